//! An HTTP/2 frame tap: exact per-stream write/read times and frame-level byte counts.
//!
//! # Why
//!
//! Over HTTP/2 the upload goes through the `h2` crate, and `h2` writes frames from its own
//! connection task: `SendStream::send_data` only queues bytes, so the driver never sees *when* a
//! stream's HEADERS frame or its last DATA frame actually reached the connection. The profile
//! needs exactly those moments (`requestStart`, `requestEnd`, `responseStart`, `responseEnd`,
//! see `docs/profile.md`) and the bytes each request put on the wire at HTTP level
//! (`sendBytesCount`, `receivedBytedCount`: frame headers + payloads).
//!
//! [`FrameTap`] wraps the connection's byte stream *below* `h2` and *above* TLS. It parses the
//! 9-byte HTTP/2 frame headers (RFC 9113 §4.1: 24-bit length, 8-bit type, 8-bit flags, 31-bit
//! stream id with the reserved bit masked) in both directions and records, per stream id, what
//! the profile needs into a shared [`TapBook`]. The driver reads snapshots from its own task with
//! [`TapBook::stream`] (the id comes from `h2`'s `SendStream::stream_id()` /
//! `ResponseFuture::stream_id()`), and calls [`TapBook::forget`] when the exchange is over.
//!
//! The tap never changes, delays, buffers or reorders the bytes: every call is forwarded
//! unchanged, and what the inner stream reports as moved is observed afterwards. Parsing is a
//! small per-direction state machine (frame header bytes so far, payload bytes remaining, the
//! current frame's type/flags/stream id), so frame headers may be split across calls at any
//! byte. The work is O(1) per frame and per call (payloads are skipped, not scanned), nothing is
//! allocated per byte or per frame (only one map entry per new stream), and the book's mutex is
//! taken once per read/write call that moved bytes.
//!
//! # Precision
//!
//! Every time recorded is one `Instant::now()` taken right after the inner `poll_read` /
//! `poll_write` / `poll_write_vectored` that moved the bytes returned `Ready`: "written" means
//! handed to the layer below (TLS or the kernel), "received" means returned by it. All frames
//! completed by one call share that call's instant. A frame's *first* byte is attributed to the
//! call that carried the first byte of its 9-byte header, its *last* byte to the call that
//! carried the last payload byte (the last header byte for an empty frame).
//!
//! # Directions
//!
//! The tap is for the *client* side of a connection: the write direction starts with the 24-byte
//! connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which is skipped (exactly 24 bytes,
//! not verified) and counted only in [`ConnectionTap::bytes_written`]; the read direction starts
//! directly with frames.
//!
//! # Attribution
//!
//! Frames of the stream-level types (DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE,
//! WINDOW_UPDATE, CONTINUATION) with a non-zero stream id count toward that stream's entry.
//! Everything else — stream 0 frames (SETTINGS, PING, GOAWAY, connection WINDOW_UPDATE),
//! connection-level types on a non-zero stream (a protocol error) and unknown/extension frame
//! types — counts only toward the [`ConnectionTap`]. Malformed input never panics: whatever the
//! length field says is skipped as payload and counted.
//!
//! Memory stays bounded: [`TapBook::forget`] drops a stream's entry, and frames that arrive
//! later on a forgotten stream (a late RST_STREAM or WINDOW_UPDATE) do not recreate it. Because
//! each endpoint opens its streams in increasing id order, the book keeps one watermark per id
//! parity: a frame on a stream that has no entry creates one only when its id is above every id
//! of the same parity already forgotten.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Length of the client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
/// Length of a frame header (RFC 9113 §4.1).
const FRAME_HEADER_LEN: usize = 9;
/// The stream id without the reserved bit.
const STREAM_ID_MASK: u32 = 0x7fff_ffff;

const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_PRIORITY: u8 = 0x2;
const TYPE_RST_STREAM: u8 = 0x3;
const TYPE_PUSH_PROMISE: u8 = 0x5;
const TYPE_GOAWAY: u8 = 0x7;
const TYPE_SETTINGS: u8 = 0x4;
const FLAG_ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const TYPE_WINDOW_UPDATE: u8 = 0x8;
const TYPE_CONTINUATION: u8 = 0x9;

const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;

/// Per-stream observations.
///
/// All instants are taken right after the `poll_read` / `poll_write` that moved the bytes
/// returned `Ready` (see the module docs for the precision this gives).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamTap {
    /// The write that carried the first byte of the stream's first HEADERS frame
    /// (`requestStart`).
    pub headers_written_at: Option<Instant>,
    /// The write that carried the last byte of the frame with END_STREAM (flag 0x1 on HEADERS or
    /// DATA) sent on the stream (`requestEnd`). When END_STREAM is on a HEADERS frame without
    /// END_HEADERS (a header block continued in CONTINUATION frames), the request ends with the
    /// block: the time is that of the last byte of the CONTINUATION carrying END_HEADERS.
    pub end_written_at: Option<Instant>,
    /// Every byte of the stream's frames written so far: 9-byte frame headers + payloads of
    /// HEADERS, CONTINUATION, DATA, RST_STREAM, PRIORITY and WINDOW_UPDATE frames on the stream.
    /// Counted as the bytes are written (a frame header when its 9th byte is written, payload
    /// bytes as they go), so it is exact at any moment.
    pub bytes_written: u64,
    /// DATA frame payload bytes written, including the pad-length byte and padding of PADDED
    /// frames (`h2` never pads, so for it this is the body size).
    pub data_written: u64,
    /// The read that carried the first byte of the most recent response head: the last HEADERS
    /// frame received on the stream before any DATA frame. Interim (1xx) heads come first, so
    /// once the driver has the final head this is `responseStart`. A HEADERS frame received
    /// after a DATA frame is a trailer block and does not move it. (Without decoding HPACK, a
    /// trailer block after a final head *without* a body is indistinguishable from a final head
    /// after a 1xx, and does move it.)
    pub last_headers_received_at: Option<Instant>,
    /// The read that carried the first byte of the first HEADERS frame received on the stream
    /// (the first interim response if any, else the final head).
    pub first_headers_received_at: Option<Instant>,
    /// The read that carried the last byte of the received frame with END_STREAM
    /// (`responseEnd`), with the same CONTINUATION rule as [`end_written_at`](Self::end_written_at).
    pub end_received_at: Option<Instant>,
    /// Every byte of the stream's frames received so far (headers + payloads, all stream-level
    /// frame types, including PUSH_PROMISE sent on the stream).
    pub bytes_received: u64,
    /// DATA frame payload bytes received (including padding, as for `data_written`).
    pub data_received: u64,
    /// Error code of the first RST_STREAM received on the stream (a frame shorter than the
    /// 4-byte error code is counted but not recorded).
    pub reset_received: Option<u32>,
}

/// Connection-wide observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConnectionTap {
    /// All bytes written, the 24-byte preface included.
    pub bytes_written: u64,
    /// All bytes read.
    pub bytes_read: u64,
    /// `(last stream id, error code)` of the most recent GOAWAY received (a server may send two:
    /// a graceful one with the maximum id, then the final one). A frame shorter than 8 payload
    /// bytes is counted but not recorded.
    pub goaway_received: Option<(u32, u32)>,
    /// The peer's latest `SETTINGS_MAX_CONCURRENT_STREAMS` (received direction; `None` until a
    /// SETTINGS frame carried it: unlimited).
    pub max_concurrent_streams: Option<u32>,
    /// Frames whose last byte has been written.
    pub frames_written: u64,
    /// Frames whose last byte has been read.
    pub frames_read: u64,
}

/// A stream's entry: the public snapshot plus what the parser needs to remember.
#[derive(Debug, Default)]
struct StreamEntry {
    tap: StreamTap,
    /// A DATA frame header has been received: later HEADERS frames are trailers.
    data_frame_received: bool,
}

#[derive(Debug, Default)]
struct Book {
    streams: HashMap<u32, StreamEntry>,
    connection: ConnectionTap,
    /// Highest forgotten stream id, per id parity (index `id & 1`).
    forgotten_max: [u32; 2],
}

impl Book {
    /// The entry of stream `id` (non-zero), created unless the stream was forgotten.
    fn entry(&mut self, id: u32) -> Option<&mut StreamEntry> {
        let forgotten_max = self.forgotten_max[(id & 1) as usize];
        match self.streams.entry(id) {
            MapEntry::Occupied(o) => Some(o.into_mut()),
            MapEntry::Vacant(v) if id > forgotten_max => Some(v.insert(StreamEntry::default())),
            MapEntry::Vacant(_) => None,
        }
    }
}

/// Shared record of what the tap saw: written by the connection task's [`FrameTap`], read as
/// snapshots by the upload drivers.
#[derive(Debug, Default)]
pub(crate) struct TapBook {
    inner: Mutex<Book>,
}

impl TapBook {
    pub(crate) fn new() -> Arc<TapBook> {
        Arc::new(TapBook::default())
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        // The book holds plain counters: a panic elsewhere cannot leave it inconsistent enough
        // to matter, so a poisoned lock is simply taken over.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot of stream `id` (all defaults if nothing was seen on it, or it was forgotten).
    pub(crate) fn stream(&self, id: u32) -> StreamTap {
        self.lock()
            .streams
            .get(&(id & STREAM_ID_MASK))
            .map(|e| e.tap.clone())
            .unwrap_or_default()
    }

    /// Drops a finished stream's entry. Frames seen later on it (or on any lower id of the same
    /// parity that has no entry) only count toward the connection.
    pub(crate) fn forget(&self, id: u32) {
        let id = id & STREAM_ID_MASK;
        if id == 0 {
            return;
        }
        let mut book = self.lock();
        book.streams.remove(&id);
        let max = &mut book.forgotten_max[(id & 1) as usize];
        *max = (*max).max(id);
    }

    /// A snapshot of the connection-wide counters.
    pub(crate) fn connection(&self) -> ConnectionTap {
        self.lock().connection.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Write,
    Read,
}

/// The frame whose header has been parsed and whose payload is being skipped.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    /// The frame counts toward `stream`'s entry.
    attributed: bool,
    /// Payload bytes to capture (GOAWAY: 8, RST_STREAM: 4, received only).
    capture: usize,
}

/// One direction's incremental frame parser.
#[derive(Debug)]
struct Parser {
    direction: Direction,
    /// Preface bytes still to skip (write direction only).
    preface_left: usize,
    header: [u8; FRAME_HEADER_LEN],
    /// Header bytes accumulated; `FRAME_HEADER_LEN` while in a frame's payload.
    header_len: usize,
    /// The call that carried the current frame's first header byte.
    started_at: Instant,
    frame: Frame,
    /// Payload bytes of the current frame not yet seen.
    remaining: usize,
    captured: [u8; 8],
    captured_len: usize,
    /// The SETTINGS entry (2-byte id, 4-byte value) being read, received direction.
    setting: [u8; 6],
    setting_len: usize,
    /// A HEADERS frame with END_STREAM but without END_HEADERS was seen on this stream: the
    /// stream ends with the CONTINUATION that carries END_HEADERS.
    end_pending: Option<u32>,
}

impl Parser {
    fn new(direction: Direction) -> Parser {
        Parser {
            direction,
            preface_left: match direction {
                Direction::Write => PREFACE_LEN,
                Direction::Read => 0,
            },
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            started_at: Instant::now(),
            frame: Frame::default(),
            remaining: 0,
            captured: [0; 8],
            captured_len: 0,
            setting: [0; 6],
            setting_len: 0,
            end_pending: None,
        }
    }

    /// Observes the bytes one call moved (`chunks`, in order, `moved` bytes in all), under one
    /// lock of the book.
    fn observe<'a>(
        &mut self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        moved: usize,
        now: Instant,
        book: &TapBook,
    ) {
        let mut book = book.lock();
        let mut left = moved;
        let mut counted = 0u64;
        for chunk in chunks {
            if left == 0 {
                break;
            }
            let chunk = &chunk[..chunk.len().min(left)];
            left -= chunk.len();
            counted += chunk.len() as u64;
            self.feed(chunk, now, &mut book);
        }
        let connection = &mut book.connection;
        match self.direction {
            Direction::Write => connection.bytes_written += counted,
            Direction::Read => connection.bytes_read += counted,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], now: Instant, book: &mut Book) {
        if self.preface_left > 0 {
            let k = self.preface_left.min(bytes.len());
            self.preface_left -= k;
            bytes = &bytes[k..];
        }
        while !bytes.is_empty() {
            if self.header_len < FRAME_HEADER_LEN {
                if self.header_len == 0 {
                    self.started_at = now;
                }
                let k = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + k].copy_from_slice(&bytes[..k]);
                self.header_len += k;
                bytes = &bytes[k..];
                if self.header_len == FRAME_HEADER_LEN {
                    self.begin_frame(book);
                    if self.remaining == 0 {
                        self.end_frame(now, book);
                    }
                }
            } else {
                let k = self.remaining.min(bytes.len());
                self.payload(&bytes[..k], book);
                self.remaining -= k;
                bytes = &bytes[k..];
                if self.remaining == 0 {
                    self.end_frame(now, book);
                }
            }
        }
    }

    /// The 9th header byte has been seen: decode the header and account for it.
    fn begin_frame(&mut self, book: &mut Book) {
        let h = &self.header;
        let length = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let kind = h[3];
        let flags = h[4];
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & STREAM_ID_MASK;
        let stream_level = matches!(
            kind,
            TYPE_DATA
                | TYPE_HEADERS
                | TYPE_PRIORITY
                | TYPE_RST_STREAM
                | TYPE_PUSH_PROMISE
                | TYPE_WINDOW_UPDATE
                | TYPE_CONTINUATION
        );
        let attributed = stream != 0 && stream_level;
        let capture = match (self.direction, kind) {
            (Direction::Read, TYPE_GOAWAY) if stream == 0 => 8,
            (Direction::Read, TYPE_RST_STREAM) if attributed => 4,
            _ => 0,
        };
        self.frame = Frame {
            kind,
            flags,
            stream,
            attributed,
            capture,
        };
        self.remaining = length;
        self.captured_len = 0;
        self.setting_len = 0;
        if kind != TYPE_CONTINUATION {
            // A header block ends before any other frame (RFC 9113 §6.10).
            self.end_pending = None;
        }
        if !attributed {
            return;
        }
        let Some(entry) = book.entry(stream) else {
            return;
        };
        let started_at = self.started_at;
        match self.direction {
            Direction::Write => {
                entry.tap.bytes_written += FRAME_HEADER_LEN as u64;
                if kind == TYPE_HEADERS && entry.tap.headers_written_at.is_none() {
                    entry.tap.headers_written_at = Some(started_at);
                }
            }
            Direction::Read => {
                entry.tap.bytes_received += FRAME_HEADER_LEN as u64;
                match kind {
                    TYPE_HEADERS => {
                        entry
                            .tap
                            .first_headers_received_at
                            .get_or_insert(started_at);
                        if !entry.data_frame_received {
                            entry.tap.last_headers_received_at = Some(started_at);
                        }
                    }
                    TYPE_DATA => entry.data_frame_received = true,
                    _ => {}
                }
            }
        }
    }

    /// Some payload bytes of the current frame went by.
    fn payload(&mut self, bytes: &[u8], book: &mut Book) {
        let frame = self.frame;
        if self.direction == Direction::Read
            && frame.kind == TYPE_SETTINGS
            && frame.stream == 0
            && frame.flags & FLAG_ACK == 0
        {
            for &b in bytes {
                self.setting[self.setting_len] = b;
                self.setting_len += 1;
                if self.setting_len == 6 {
                    self.setting_len = 0;
                    let id = u16::from_be_bytes([self.setting[0], self.setting[1]]);
                    let value = u32::from_be_bytes([
                        self.setting[2],
                        self.setting[3],
                        self.setting[4],
                        self.setting[5],
                    ]);
                    if id == SETTINGS_MAX_CONCURRENT_STREAMS {
                        book.connection.max_concurrent_streams = Some(value);
                    }
                }
            }
        }
        if self.captured_len < self.frame.capture {
            let k = (self.frame.capture - self.captured_len).min(bytes.len());
            self.captured[self.captured_len..self.captured_len + k].copy_from_slice(&bytes[..k]);
            self.captured_len += k;
        }
        if !self.frame.attributed || bytes.is_empty() {
            return;
        }
        let Some(entry) = book.entry(self.frame.stream) else {
            return;
        };
        let n = bytes.len() as u64;
        let data = self.frame.kind == TYPE_DATA;
        match self.direction {
            Direction::Write => {
                entry.tap.bytes_written += n;
                if data {
                    entry.tap.data_written += n;
                }
            }
            Direction::Read => {
                entry.tap.bytes_received += n;
                if data {
                    entry.tap.data_received += n;
                }
            }
        }
    }

    /// The current frame's last byte went by in the call made at `now`.
    fn end_frame(&mut self, now: Instant, book: &mut Book) {
        self.header_len = 0;
        let frame = self.frame;
        match self.direction {
            Direction::Write => book.connection.frames_written += 1,
            Direction::Read => book.connection.frames_read += 1,
        }
        if frame.kind == TYPE_GOAWAY && frame.capture == 8 && self.captured_len == 8 {
            let c = &self.captured;
            let last = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) & STREAM_ID_MASK;
            let code = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            book.connection.goaway_received = Some((last, code));
        }
        if !frame.attributed {
            return;
        }
        let end_stream = match frame.kind {
            TYPE_DATA => frame.flags & FLAG_END_STREAM != 0,
            TYPE_HEADERS if frame.flags & FLAG_END_STREAM != 0 => {
                if frame.flags & FLAG_END_HEADERS != 0 {
                    true
                } else {
                    self.end_pending = Some(frame.stream);
                    false
                }
            }
            TYPE_CONTINUATION
                if frame.flags & FLAG_END_HEADERS != 0
                    && self.end_pending == Some(frame.stream) =>
            {
                self.end_pending = None;
                true
            }
            _ => false,
        };
        let reset = (frame.kind == TYPE_RST_STREAM && frame.capture == 4 && self.captured_len == 4)
            .then(|| u32::from_be_bytes(self.captured[..4].try_into().unwrap_or([0; 4])));
        if !end_stream && reset.is_none() {
            return;
        }
        let Some(entry) = book.entry(frame.stream) else {
            return;
        };
        if end_stream {
            let end = match self.direction {
                Direction::Write => &mut entry.tap.end_written_at,
                Direction::Read => &mut entry.tap.end_received_at,
            };
            end.get_or_insert(now);
        }
        if let Some(code) = reset {
            entry.tap.reset_received.get_or_insert(code);
        }
    }
}

/// The client connection's byte stream with a frame tap on it. `AsyncRead + AsyncWrite + Unpin`
/// when `S` is; every call is forwarded unchanged.
#[derive(Debug)]
pub(crate) struct FrameTap<S> {
    inner: S,
    book: Arc<TapBook>,
    read: Parser,
    write: Parser,
}

impl<S> FrameTap<S> {
    /// Wraps the client side of a connection whose first written bytes are the HTTP/2 preface.
    pub(crate) fn new(inner: S, book: Arc<TapBook>) -> Self {
        FrameTap {
            inner,
            book,
            read: Parser::new(Direction::Read),
            write: Parser::new(Direction::Write),
        }
    }

    /// The wrapped stream.
    #[cfg(test)]
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameTap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let got = buf.filled().get(before..).unwrap_or_default();
            if !got.is_empty() {
                let now = Instant::now();
                this.read.observe([got], got.len(), now, &this.book);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameTap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                let now = Instant::now();
                this.write.observe([buf], n, now, &this.book);
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                let now = Instant::now();
                let chunks = bufs.iter().map(|b| &**b);
                this.write.observe(chunks, n, now, &this.book);
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::{BTreeMap, VecDeque};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// In-memory I/O: reads return the queued chunks one per call (at most `max` bytes per
    /// call), writes accept at most `max` bytes per call.
    struct Mem {
        chunks: VecDeque<Vec<u8>>,
        written: Vec<u8>,
        max: usize,
        vectored: bool,
    }

    impl Mem {
        fn new(max: usize) -> Mem {
            Mem {
                chunks: VecDeque::new(),
                written: Vec::new(),
                max,
                vectored: false,
            }
        }

        fn reading(chunks: Vec<Vec<u8>>, max: usize) -> Mem {
            Mem {
                chunks: chunks.into(),
                ..Mem::new(max)
            }
        }
    }

    impl AsyncRead for Mem {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if let Some(front) = this.chunks.front_mut() {
                let k = front.len().min(this.max).min(buf.remaining());
                buf.put_slice(&front[..k]);
                front.drain(..k);
                if front.is_empty() {
                    this.chunks.pop_front();
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Mem {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let k = buf.len().min(this.max);
            this.written.extend_from_slice(&buf[..k]);
            Poll::Ready(Ok(k))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let mut left = this.max;
            for b in bufs {
                let k = b.len().min(left);
                this.written.extend_from_slice(&b[..k]);
                left -= k;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(this.max - left))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What a whole-buffer parser says: per stream (bytes, data), frames completed, bytes.
    #[derive(Debug, Default, PartialEq)]
    struct Totals {
        streams: BTreeMap<u32, (u64, u64)>,
        frames: u64,
        bytes: u64,
    }

    fn reference(bytes: &[u8], preface: bool) -> Totals {
        let mut t = Totals {
            bytes: bytes.len() as u64,
            ..Totals::default()
        };
        let mut i = if preface { 24.min(bytes.len()) } else { 0 };
        while i + 9 <= bytes.len() {
            let h = &bytes[i..i + 9];
            let length = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let kind = h[3];
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            let available = length.min(bytes.len() - i - 9);
            if stream != 0 && matches!(kind, 0 | 1 | 2 | 3 | 5 | 8 | 9) {
                let e = t.streams.entry(stream).or_default();
                e.0 += 9 + available as u64;
                if kind == 0 {
                    e.1 += available as u64;
                }
            }
            if available == length {
                t.frames += 1;
            }
            i += 9 + available;
        }
        t
    }

    fn check_against_reference(book: &TapBook, bytes: &[u8], write: bool) {
        let expected = reference(bytes, write);
        let c = book.connection();
        let (frames, total) = if write {
            (c.frames_written, c.bytes_written)
        } else {
            (c.frames_read, c.bytes_read)
        };
        assert_eq!((frames, total), (expected.frames, expected.bytes));
        for (&id, &(b, d)) in &expected.streams {
            let s = book.stream(id);
            let got = if write {
                (s.bytes_written, s.data_written)
            } else {
                (s.bytes_received, s.data_received)
            };
            assert_eq!(got, (b, d), "stream {id}");
        }
        assert_eq!(book.stream(0), StreamTap::default());
    }

    /// Preface + SETTINGS + HEADERS(1) + DATA(1, 100 bytes) + DATA(1, END_STREAM, 20 bytes) +
    /// connection WINDOW_UPDATE.
    fn upload_bytes() -> Vec<u8> {
        let mut v = PREFACE.to_vec();
        v.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        v.extend(frame(
            0x1,
            FLAG_END_HEADERS,
            1,
            &[0x83, 0x86, 0x84, 0x41, 0x01, b'x'],
        ));
        v.extend(frame(0x0, 0, 1, &[7; 100]));
        v.extend(frame(0x0, FLAG_END_STREAM, 1, &[8; 20]));
        v.extend(frame(0x8, 0, 0, &1000u32.to_be_bytes()));
        v
    }

    /// Times cleared, for comparing counts only.
    fn counts(mut s: StreamTap) -> StreamTap {
        s.headers_written_at = None;
        s.end_written_at = None;
        s.first_headers_received_at = None;
        s.last_headers_received_at = None;
        s.end_received_at = None;
        s
    }

    #[tokio::test]
    async fn one_write_and_byte_by_byte_agree() {
        let bytes = upload_bytes();
        let mut snapshots = Vec::new();
        for max in [usize::MAX, 1] {
            let book = TapBook::new();
            let mut tap = FrameTap::new(Mem::new(max), book.clone());
            let before = Instant::now();
            tap.write_all(&bytes).await.unwrap();
            let after = Instant::now();
            assert_eq!(
                tap.get_ref().written,
                bytes,
                "the tap never changes the bytes"
            );

            let s = book.stream(1);
            assert_eq!(s.bytes_written, 9 * 3 + 6 + 100 + 20);
            assert_eq!(s.data_written, 120);
            let (h, e) = (s.headers_written_at.unwrap(), s.end_written_at.unwrap());
            assert!(before <= h && h <= e && e <= after);
            assert_eq!(s.bytes_received, 0);
            assert_eq!(book.stream(0), StreamTap::default());
            assert_eq!(
                book.connection(),
                ConnectionTap {
                    bytes_written: bytes.len() as u64,
                    frames_written: 5,
                    ..ConnectionTap::default()
                }
            );
            check_against_reference(&book, &bytes, true);
            snapshots.push(counts(s));
        }
        assert_eq!(snapshots[0], snapshots[1]);
    }

    #[tokio::test]
    async fn first_byte_and_last_byte_calls_are_the_ones_timed() {
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::new(usize::MAX), book.clone());
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x1, FLAG_END_HEADERS, 1, &[0x82; 10]));
        let headers_end = bytes.len();
        bytes.extend(frame(0x0, FLAG_END_STREAM, 1, &[1; 50]));
        // Write 1: preface + the first 4 header bytes of HEADERS. Write 2: the rest of HEADERS
        // and all but the last byte of DATA. Write 3: DATA's last byte.
        let cuts = [0, 28, bytes.len() - 1, bytes.len()];
        let mut windows = Vec::new();
        for w in cuts.windows(2) {
            let before = Instant::now();
            tap.write_all(&bytes[w[0]..w[1]]).await.unwrap();
            windows.push((before, Instant::now()));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(headers_end < bytes.len() - 1);
        let s = book.stream(1);
        let h = s.headers_written_at.unwrap();
        let e = s.end_written_at.unwrap();
        assert!(
            windows[0].0 <= h && h <= windows[0].1,
            "HEADERS' first byte: write 1"
        );
        assert!(
            windows[2].0 <= e && e <= windows[2].1,
            "DATA's last byte: write 3"
        );
        assert_eq!(s.bytes_written, 9 + 10 + 9 + 50);
    }

    #[tokio::test]
    async fn vectored_writes_parse_each_slice_up_to_what_was_written() {
        let bytes = upload_bytes();
        // Uneven slices, and an inner stream that takes 7 bytes per call.
        let slices: Vec<&[u8]> = vec![
            &bytes[..5],
            &bytes[5..30],
            &[],
            &bytes[30..31],
            &bytes[31..],
        ];
        let book = TapBook::new();
        let mut mem = Mem::new(7);
        mem.vectored = true;
        let mut tap = FrameTap::new(mem, book.clone());
        assert!(tap.is_write_vectored());
        let mut done = 0;
        while done < bytes.len() {
            // Rebuild the slices past what was written so far.
            let mut skip = done;
            let mut rest = Vec::new();
            for s in &slices {
                if skip >= s.len() {
                    skip -= s.len();
                    continue;
                }
                rest.push(IoSlice::new(&s[skip..]));
                skip = 0;
            }
            done += tap.write_vectored(&rest).await.unwrap();
        }
        assert_eq!(tap.get_ref().written, bytes);
        check_against_reference(&book, &bytes, true);
        assert_eq!(book.stream(1).data_written, 120);
        assert!(book.stream(1).end_written_at.is_some());
    }

    async fn read_chunks(tap: &mut FrameTap<Mem>, n: usize) -> Vec<(Instant, Instant)> {
        let mut windows = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..n {
            let before = Instant::now();
            let k = tap.read(&mut buf).await.unwrap();
            assert!(k > 0);
            windows.push((before, Instant::now()));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        windows
    }

    #[tokio::test]
    async fn interim_head_then_final_head_then_trailers() {
        let interim = frame(0x1, FLAG_END_HEADERS, 1, &[0x08, 0x03, b'1', b'0', b'3']);
        let head = frame(0x1, FLAG_END_HEADERS, 1, &[0x88]);
        let data = frame(0x0, 0, 1, &[5; 30]);
        let trailers = frame(
            0x1,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            1,
            &[0x40, 1, b'a', 1, b'b'],
        );
        let chunks = vec![
            interim.clone(),
            head.clone(),
            data.clone(),
            trailers.clone(),
        ];
        let all: Vec<u8> = chunks.concat();
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::reading(chunks, usize::MAX), book.clone());
        let w = read_chunks(&mut tap, 4).await;
        let s = book.stream(1);
        let first = s.first_headers_received_at.unwrap();
        let last = s.last_headers_received_at.unwrap();
        let end = s.end_received_at.unwrap();
        assert!(w[0].0 <= first && first <= w[0].1);
        assert!(
            w[1].0 <= last && last <= w[1].1,
            "trailers do not move the final head"
        );
        assert!(first < last);
        assert!(w[3].0 <= end && end <= w[3].1);
        assert_eq!(s.data_received, 30);
        assert_eq!(s.bytes_received, all.len() as u64);
        assert_eq!(s.headers_written_at, None);
        check_against_reference(&book, &all, false);
    }

    #[tokio::test]
    async fn head_split_across_reads_is_timed_at_its_first_byte() {
        let mut bytes = frame(0x4, 0, 0, &[]);
        bytes.extend(frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &[0x88]));
        // Read 1: SETTINGS + 2 bytes of the HEADERS header; read 2: the rest.
        let chunks = vec![bytes[..11].to_vec(), bytes[11..].to_vec()];
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::reading(chunks, usize::MAX), book.clone());
        let w = read_chunks(&mut tap, 2).await;
        let s = book.stream(3);
        let head = s.last_headers_received_at.unwrap();
        let end = s.end_received_at.unwrap();
        assert!(w[0].0 <= head && head <= w[0].1);
        assert!(w[1].0 <= end && end <= w[1].1);
        assert_eq!(s.first_headers_received_at, Some(head));
        assert_eq!(book.connection().frames_read, 2);
    }

    #[tokio::test]
    async fn end_stream_on_a_continued_header_block_ends_with_the_block() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x1, FLAG_END_STREAM, 1, &[0x82; 8]));
        bytes.extend(frame(0x9, 0, 1, &[0x84; 8]));
        let before_last = bytes.len();
        bytes.extend(frame(0x9, FLAG_END_HEADERS, 1, &[0x86; 8]));
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::new(usize::MAX), book.clone());
        tap.write_all(&bytes[..before_last]).await.unwrap();
        assert_eq!(book.stream(1).end_written_at, None);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let before = Instant::now();
        tap.write_all(&bytes[before_last..]).await.unwrap();
        let s = book.stream(1);
        assert!(s.end_written_at.unwrap() >= before);
        assert!(s.headers_written_at.unwrap() < before);
        assert_eq!(s.bytes_written, 3 * (9 + 8));
        assert_eq!(s.data_written, 0);
    }

    #[tokio::test]
    async fn rst_stream_and_goaway_split_byte_by_byte() {
        let mut bytes = frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]);
        bytes.extend(frame(0x3, 0, 3, &8u32.to_be_bytes()));
        bytes.extend(frame(0x3, 0, 3, &2u32.to_be_bytes())); // a second one: the first is kept
        bytes.extend(frame(0x3, 0, 5, &[0, 0])); // too short: counted, not recorded
        let mut goaway = (0x8000_0000u32 | 5).to_be_bytes().to_vec(); // reserved bit set
        goaway.extend(0u32.to_be_bytes());
        bytes.extend(frame(0x7, 0, 0, &goaway));
        let mut goaway = 3u32.to_be_bytes().to_vec();
        goaway.extend(2u32.to_be_bytes());
        goaway.extend(b"debug data");
        bytes.extend(frame(0x7, 0, 0, &goaway));
        bytes.extend(frame(0x6, 0, 0, &[1; 8])); // PING
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::reading(vec![bytes.clone()], 1), book.clone());
        let mut sink = Vec::new();
        tap.read_to_end(&mut sink).await.unwrap();
        assert_eq!(sink, bytes);
        let s3 = book.stream(3);
        assert_eq!(s3.reset_received, Some(8));
        assert_eq!(s3.bytes_received, 2 * 13);
        assert_eq!(s3.end_received_at, None);
        let s5 = book.stream(5);
        assert_eq!(s5.reset_received, None);
        assert_eq!(s5.bytes_received, 11);
        assert_eq!(book.stream(0), StreamTap::default());
        let c = book.connection();
        assert_eq!(
            c.goaway_received,
            Some((3, 2)),
            "the latest GOAWAY, reserved bit masked"
        );
        assert_eq!(c.frames_read, 7);
        assert_eq!(c.bytes_read, bytes.len() as u64);
        assert_eq!(c.bytes_written, 0);
        check_against_reference(&book, &bytes, false);
    }

    #[tokio::test]
    async fn stream_zero_and_unknown_frames_count_only_toward_the_connection() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0, &[0; 12]));
        bytes.extend(frame(0x8, 0, 0, &[0, 1, 0, 0]));
        bytes.extend(frame(0x6, 0, 0, &[0; 8]));
        bytes.extend(frame(0xb, 0, 1, &[0; 17])); // unknown extension type on stream 1
        bytes.extend(frame(0x4, 0, 1, &[])); // SETTINGS on a stream: not stream-level
        bytes.extend(frame(0x8, 0, 1, &[0, 0, 1, 0])); // stream WINDOW_UPDATE: counted
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::new(3), book.clone());
        tap.write_all(&bytes).await.unwrap();
        assert_eq!(book.stream(0), StreamTap::default());
        let s1 = book.stream(1);
        assert_eq!(s1.bytes_written, 13);
        assert_eq!(s1.headers_written_at, None);
        let c = book.connection();
        assert_eq!((c.frames_written, c.bytes_written), (6, bytes.len() as u64));
    }

    #[tokio::test]
    async fn forget_drops_the_entry_and_late_frames_do_not_bring_it_back() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &[0x82]));
        bytes.extend(frame(0x1, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &[0x82]));
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::new(usize::MAX), book.clone());
        tap.write_all(&bytes).await.unwrap();
        assert!(book.stream(1).end_written_at.is_some());
        book.forget(3);
        assert_eq!(book.stream(3), StreamTap::default());
        assert!(
            book.stream(1).end_written_at.is_some(),
            "other streams untouched"
        );
        // A late RST_STREAM on 3, and on 1 (still known): 3 stays gone.
        let mut late = frame(0x3, 0, 3, &8u32.to_be_bytes());
        late.extend(frame(0x3, 0, 1, &8u32.to_be_bytes()));
        // A new stream above the watermark is tracked; stream 2 (other parity) too.
        late.extend(frame(0x1, FLAG_END_HEADERS, 5, &[0x88]));
        late.extend(frame(0x1, FLAG_END_HEADERS, 2, &[0x88]));
        tap.write_all(&late).await.unwrap();
        assert_eq!(book.stream(3), StreamTap::default());
        assert_eq!(book.stream(1).bytes_written, 10 + 13);
        assert_eq!(book.stream(5).bytes_written, 10);
        assert_eq!(book.stream(2).bytes_written, 10);
        book.forget(1);
        book.forget(5);
        book.forget(2);
        book.forget(0);
        assert!(book.lock().streams.is_empty());
        let c = book.connection();
        assert_eq!(c.bytes_written, (bytes.len() + late.len()) as u64);
        assert_eq!(c.frames_written, 6);
    }

    /// xorshift64*: deterministic pseudo-random numbers for the property tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_frames(rng: &mut Rng, count: usize) -> Vec<u8> {
        let kinds = [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xa, 0x10, 0xff];
        let streams = [0, 1, 3, 5, 2, 0x8000_0001];
        let mut v = Vec::new();
        for _ in 0..count {
            let len = match rng.below(10) {
                0 => 0,
                1 => 16_384 + rng.below(5000),
                _ => rng.below(300),
            };
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let kind = kinds[rng.below(kinds.len())];
            let stream = streams[rng.below(streams.len())];
            v.extend(frame(kind, rng.next() as u8, stream, &payload));
        }
        v
    }

    #[tokio::test]
    async fn random_frames_in_random_pieces_match_a_whole_buffer_parser() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..40 {
            let mut bytes = if round % 2 == 0 {
                PREFACE.to_vec()
            } else {
                Vec::new()
            };
            bytes.extend(random_frames(&mut rng, 30));
            // Sometimes cut the last frame short.
            if round % 3 == 0 {
                let cut = rng.below(bytes.len());
                bytes.truncate(cut);
            }
            let book = TapBook::new();
            let mut tap = FrameTap::new(Mem::new(1 + rng.below(64)), book.clone());
            let mut i = 0;
            while i < bytes.len() {
                let k = 1 + rng.below(200).min(bytes.len() - i - 1);
                tap.write_all(&bytes[i..i + k]).await.unwrap();
                i += k;
            }
            if round % 2 == 0 {
                check_against_reference(&book, &bytes, true);
            }

            let chunks: Vec<Vec<u8>> = bytes
                .chunks(1 + rng.below(500))
                .map(<[u8]>::to_vec)
                .collect();
            let read_book = TapBook::new();
            let mem = Mem::reading(chunks, 1 + rng.below(100));
            let mut tap = FrameTap::new(mem, read_book.clone());
            let mut sink = Vec::new();
            tap.read_to_end(&mut sink).await.unwrap();
            assert_eq!(sink, bytes);
            check_against_reference(&read_book, &bytes, false);
        }
    }

    #[tokio::test]
    async fn garbage_never_panics() {
        let mut rng = Rng(42);
        let mut garbage = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec();
        garbage.extend((0..100_000).map(|_| rng.next() as u8));
        garbage.extend([0xff; 64]);
        let book = TapBook::new();
        let mem = Mem::reading(vec![garbage.clone()], 999);
        let mut tap = FrameTap::new(mem, book.clone());
        let mut sink = Vec::new();
        tap.read_to_end(&mut sink).await.unwrap();
        assert_eq!(book.connection().bytes_read, garbage.len() as u64);
        check_against_reference(&book, &garbage, false);

        let mut tap = FrameTap::new(Mem::new(4096), book.clone());
        tap.write_all(&garbage).await.unwrap();
        assert_eq!(book.connection().bytes_written, garbage.len() as u64);
    }

    /// Records every byte moved, under the tap (what actually went over the connection).
    struct Recorder<S> {
        inner: S,
        written: Arc<Mutex<Vec<u8>>>,
        read: Arc<Mutex<Vec<u8>>>,
        vectored: bool,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let before = buf.filled().len();
            let r = Pin::new(&mut this.inner).poll_read(cx, buf);
            this.read
                .lock()
                .unwrap()
                .extend_from_slice(&buf.filled()[before..]);
            r
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let r = Pin::new(&mut this.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = r {
                this.written.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            r
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            if let Poll::Ready(Ok(n)) = r {
                let mut left = n;
                let mut w = this.written.lock().unwrap();
                for b in bufs {
                    let k = b.len().min(left);
                    w.extend_from_slice(&b[..k]);
                    left -= k;
                }
            }
            r
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
        }
    }

    /// Frames on `stream` in a whole buffer: (count, payload bytes, DATA payload bytes).
    fn frames_on(bytes: &[u8], preface: bool, stream: u32) -> (u64, u64, u64) {
        let mut i = if preface { 24 } else { 0 };
        let mut t = (0, 0, 0);
        while i + 9 <= bytes.len() {
            let h = &bytes[i..i + 9];
            let length = u32::from_be_bytes([0, h[0], h[1], h[2]]) as u64;
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            if id == stream {
                t.0 += 1;
                t.1 += length;
                if h[3] == 0 {
                    t.2 += length;
                }
            }
            i += 9 + length as usize;
        }
        t
    }

    /// A real `h2` client over the tap against a real `h2` server: 100 KiB up, 10 KiB down.
    async fn h2_exchange(vectored: bool) {
        use bytes::Bytes;

        const UP: usize = 100 * 1024;
        const DOWN: usize = 10 * 1024;
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);

        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(server_io).await.unwrap();
            while let Some(accepted) = conn.accept().await {
                let (request, mut respond) = accepted.unwrap();
                tokio::spawn(async move {
                    let mut body = request.into_body();
                    let mut got = 0;
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk.unwrap();
                        got += chunk.len();
                        body.flow_control().release_capacity(chunk.len()).unwrap();
                    }
                    assert_eq!(got, UP);
                    let response = http::Response::builder().status(200).body(()).unwrap();
                    let mut send = respond.send_response(response, false).unwrap();
                    send.send_data(Bytes::from(vec![7u8; DOWN]), true).unwrap();
                });
            }
        });

        let written = Arc::new(Mutex::new(Vec::new()));
        let read = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            inner: client_io,
            written: written.clone(),
            read: read.clone(),
            vectored,
        };
        let book = TapBook::new();
        let tap = FrameTap::new(recorder, book.clone());
        let (mut client, connection) = h2::client::handshake(tap).await.unwrap();
        let connection = tokio::spawn(connection);

        let request = http::Request::builder()
            .method("POST")
            .uri("http://upload.test/upload")
            .body(())
            .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        let id = send.stream_id().as_u32();
        assert_eq!(id, 1);
        send.send_data(Bytes::from(vec![1u8; UP]), true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut got = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            got += chunk.len();
            body.flow_control().release_capacity(chunk.len()).unwrap();
        }
        assert_eq!(got, DOWN);

        // The response is in: both ends of stream 1 were seen.
        let s = book.stream(id);
        assert_eq!(s.data_written, UP as u64);
        assert_eq!(s.data_received, DOWN as u64);
        let start = s.headers_written_at.unwrap();
        let end = s.end_written_at.unwrap();
        let head = s.last_headers_received_at.unwrap();
        let response_end = s.end_received_at.unwrap();
        assert!(start <= end && end <= head && head <= response_end);
        assert_eq!(
            s.first_headers_received_at,
            Some(head),
            "no interim response"
        );
        assert_eq!(s.reset_received, None);

        // Close the connection and compare with what went over the wire.
        drop((body, send, client));
        let closed = async {
            connection.await.unwrap().unwrap();
            server.await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(20), closed)
            .await
            .expect("the connection closes");
        let s = book.stream(id);
        let written = written.lock().unwrap().clone();
        let read = read.lock().unwrap().clone();
        assert_eq!(&written[..24], PREFACE);
        let (frames, payload, data) = frames_on(&written, true, id);
        assert_eq!(data, UP as u64);
        assert!(frames >= 2);
        assert_eq!(s.bytes_written, 9 * frames + payload);
        assert!(s.bytes_written >= UP as u64 + 9);
        let (frames, payload, data) = frames_on(&read, false, id);
        assert_eq!(data, DOWN as u64);
        assert_eq!(s.bytes_received, 9 * frames + payload);
        assert!(s.bytes_received >= DOWN as u64);
        let c = book.connection();
        assert_eq!(c.bytes_written, written.len() as u64);
        assert_eq!(c.bytes_read, read.len() as u64);
        check_against_reference(&book, &written, true);
        assert_eq!(c.frames_read, reference(&read, false).frames);
        assert!(c.goaway_received.is_none() || c.goaway_received == Some((1, 0)));
    }

    #[tokio::test]
    async fn h2_client_over_the_tap() {
        let exchange = h2_exchange(false);
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn h2_client_over_the_tap_vectored() {
        let exchange = h2_exchange(true);
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap();
    }
}
