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
//! [`FrameTap`] wraps the connection's byte stream *below* `h2` and *above* TLS and hands what
//! each call moved, with the call's instant, to a sans-IO [`FrameParser`] per direction
//! ([`crate::proto::h2_frames`] says how frames are parsed, which call a frame's first and last
//! bytes are attributed to, and which frames count toward a stream). The parsers record into the
//! [`FrameLedger`] inside a shared [`TapBook`]. The driver reads snapshots from its own task with
//! [`TapBook::stream`] (the id comes from `h2`'s `SendStream::stream_id()` /
//! `ResponseFuture::stream_id()`), and calls [`TapBook::forget`] when the exchange is over.
//!
//! The tap never changes, delays, buffers or reorders the bytes: every call is forwarded
//! unchanged, and what the inner stream reports as moved is observed afterwards (a partial write
//! is observed up to what the inner stream accepted, a vectored write slice by slice up to that
//! count). The book's mutex is taken once per read/write call that moved bytes.
//!
//! # Precision
//!
//! Every time recorded is one `Instant::now()` taken right after the inner `poll_read` /
//! `poll_write` / `poll_write_vectored` that moved the bytes returned `Ready`: "written" means
//! handed to the layer below (TLS or the kernel), "received" means returned by it. All frames
//! completed by one call share that call's instant.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::stream::Stream;
use crate::measure::StreamStamps;
use crate::proto::h2_frames::{ConnectionTap, Direction, FrameLedger, FrameParser, StreamTap};
use crate::proto::tcp_acks::{ConnectionAcks, StreamAcked};

/// Shared record of what the tap saw: written by the connection task's [`FrameTap`], read as
/// snapshots by the upload drivers.
#[derive(Debug, Default)]
pub(crate) struct TapBook {
    inner: Mutex<Books>,
    /// How many bytes may follow a request's end in the same send: what the connection
    /// delivers in [`CUT_TOLERANCE`] (so the end's acknowledgement is late by no more than
    /// that), 0 (always cut) until the kernel reported a delivery rate. Cutting costs a write per
    /// request end, which on a fast link many small streams would pay for nothing.
    pub(crate) cut_after: AtomicU64,
}

/// How late a request end's acknowledgement may be for bytes that follow it in its send.
pub(crate) const CUT_TOLERANCE: std::time::Duration = std::time::Duration::from_micros(100);

/// What the book holds under its one lock.
#[derive(Debug, Default)]
pub(crate) struct Books {
    /// What the frames said.
    pub frames: FrameLedger,
    /// Where tracked streams' body bytes are in the TCP byte stream, and what of it the peer
    /// acknowledged.
    pub acks: ConnectionAcks,
    /// Scratch for [`FrameLedger::take_written`].
    written: Vec<u32>,
}

impl Books {
    /// The tap's writes so far are all in the socket, which has had `offset` bytes: place the
    /// tracked streams written since the last sync at that offset.
    fn sync(&mut self, offset: u64) {
        let mut written = std::mem::take(&mut self.written);
        self.frames.take_written(&mut written);
        for &id in &written {
            if !self.acks.is_tracked(id) {
                continue;
            }
            let tap = self.frames.stream(id);
            if tap.request_end.is_some() {
                self.acks.finish(id, offset, tap.body_bytes_sent);
            } else {
                self.acks.mark(id, offset, tap.body_bytes_sent);
            }
        }
        self.written = written;
    }
}

impl TapBook {
    pub(crate) fn new() -> Arc<TapBook> {
        Arc::new(TapBook::default())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Books> {
        // The ledger holds plain counters: a panic elsewhere cannot leave it inconsistent enough
        // to matter, so a poisoned lock is simply taken over.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot of stream `id` (all defaults if nothing was seen on it, or it was forgotten).
    pub(crate) fn stream(&self, id: u32) -> StreamTap {
        self.lock().frames.stream(id)
    }

    /// Track what the peer acknowledged of stream `id`'s body (before its body is written).
    pub(crate) fn track_acks(&self, id: u32) {
        self.lock().acks.track(id);
    }

    /// What the peer acknowledged of stream `id`'s body (zero unless tracked).
    pub(crate) fn acked(&self, id: u32) -> StreamAcked {
        self.lock().acks.stream(id)
    }

    /// What the profile takes of stream `id`: its [`StreamStamps`]. The request's head is the
    /// HEADERS frame, so its first byte's write is both `requestStart` and `requestHeadEnd`.
    pub(crate) fn stamps(&self, id: u32) -> StreamStamps {
        let tap = self.stream(id);
        StreamStamps {
            request_start: tap.request_start,
            request_head_end: tap.request_start,
            request_end: tap.request_end,
            response_start: tap.response_start,
            response_end: tap.response_end,
            send_bytes_count: tap.send_bytes_count,
            // The body without padding (`h2` never pads: all of it).
            body_bytes_sent: tap.body_bytes_sent - tap.data_padding_sent,
            received_byted_count: tap.received_byted_count,
            request_header_bytes: tap.header_block_sent,
            request_framing_bytes: tap.framing_sent,
            response_header_bytes: tap.header_block_received,
            response_framing_bytes: tap.framing_received,
        }
    }

    /// Drops a finished stream's entry. Frames seen later on it (or on any lower id of the same
    /// parity that has no entry) only count toward the connection.
    pub(crate) fn forget(&self, id: u32) {
        let mut books = self.lock();
        books.frames.forget(id);
        books.acks.forget(id);
    }

    /// A snapshot of the connection-wide counters.
    pub(crate) fn connection(&self) -> ConnectionTap {
        self.lock().frames.connection().clone()
    }

    /// Feeds what one call moved to `parser` under one lock: `chunks` in order, `moved` bytes in
    /// all (fewer than the chunks hold when the inner stream took only part of them), all stamped
    /// `now`; then, with `sync`, places the streams written since the last sync at that socket
    /// offset ([`Books::sync`]).
    fn observe<'a>(
        &self,
        parser: &mut FrameParser,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        moved: usize,
        now: Instant,
        sync: Option<u64>,
    ) {
        let mut books = self.lock();
        let mut left = moved;
        for chunk in chunks {
            if left == 0 {
                break;
            }
            let chunk = &chunk[..chunk.len().min(left)];
            left -= chunk.len();
            parser.feed(chunk, now, &mut books.frames);
        }
        if let Some(offset) = sync {
            books.sync(offset);
        }
    }
}

/// What the tap needs from the stream below it to place bytes in the TCP byte stream.
pub(crate) trait SocketBelow {
    /// TCP payload bytes handed to the kernel so far.
    fn socket_written(&self) -> u64;
    /// Bytes the stream accepted are still waiting above the socket (TLS records rustls could
    /// not write yet).
    fn pending_above_socket(&self) -> bool;
    /// Ask the socket to stamp the acknowledgement of each send (`true`), or of none.
    fn stamp_sends(&mut self, on: bool);
}

impl SocketBelow for Stream {
    fn socket_written(&self) -> u64 {
        self.socket().written()
    }

    fn pending_above_socket(&self) -> bool {
        self.tls_pending()
    }

    fn stamp_sends(&mut self, on: bool) {
        self.socket_mut().set_stamping(on);
    }
}

/// The client connection's byte stream with a frame tap on it. `AsyncRead + AsyncWrite + Unpin`
/// when `S` is; the bytes are forwarded unchanged and in order.
///
/// With acknowledgement tracking on ([`FrameTap::tracking_acks`]) the tap also places each
/// tracked stream's body bytes in the TCP byte stream ([`Books::sync`]) and makes the end of each
/// request exact: a write that would carry the last byte of a stream's final frame *and more*
/// is cut short right after that byte (the writer above sends the rest in its next call), the
/// socket stamps the sends that carry it, and under TLS the records are pushed into the socket
/// before anything follows them. So that byte ends a TLS record and a `send()`, and the kernel's
/// stamp of that send is the stream's `bodyAckedEnd`. The cut is skipped when what would follow
/// the end is no more than the connection delivers in [`CUT_TOLERANCE`] ([`TapBook::cut_after`]):
/// then the stamp is of a byte at most that much later, and many small streams on a fast link do
/// not pay a write each for nothing.
#[derive(Debug)]
pub(crate) struct FrameTap<S> {
    inner: S,
    book: Arc<TapBook>,
    read: FrameParser,
    write: FrameParser,
    /// Acknowledgement tracking is on.
    acks: bool,
    /// A request's end was written but its TLS records are not all in the socket yet.
    flush_owed: bool,
    /// The socket stamps its sends (a request's end is on its way).
    stamping: bool,
}

impl<S> FrameTap<S> {
    /// Wraps the client side of a connection whose first written bytes are the HTTP/2 preface.
    pub(crate) fn new(inner: S, book: Arc<TapBook>) -> Self {
        FrameTap {
            inner,
            book,
            read: FrameParser::new(Direction::Read),
            write: FrameParser::new(Direction::Write),
            acks: false,
            flush_owed: false,
            stamping: false,
        }
    }

    /// Place tracked streams' body bytes in the TCP byte stream and stamp request ends (the
    /// connection has acknowledgement counters; see the type's docs).
    pub(crate) fn tracking_acks(mut self) -> Self {
        self.acks = true;
        self
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
                this.book
                    .observe(&mut this.read, [got], got.len(), now, None);
            }
        }
        result
    }
}

impl<S: AsyncWrite + SocketBelow + Unpin> FrameTap<S> {
    /// Before a write: push out what a request's end left above the socket, and see whether the
    /// bytes to write hold a request's end. Returns where that end is in them, and how many of
    /// them may go in this call: up to the end, unless what would follow it is so little that
    /// it cannot make the end's acknowledgement measurably late ([`TapBook::cut_after`]).
    fn before_write<'a>(
        &mut self,
        cx: &mut Context<'_>,
        chunks: impl IntoIterator<Item = &'a [u8]> + Clone,
    ) -> Poll<io::Result<(Option<usize>, Option<usize>)>> {
        if !self.acks {
            return Poll::Ready(Ok((None, None)));
        }
        if self.flush_owed {
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            self.synced();
        }
        // Only the ends of streams whose acknowledgement is tracked are worth a stamp or a cut.
        let end = {
            let books = self.book.lock();
            self.write
                .bytes_to_stream_end(chunks.clone(), |id| books.acks.is_tracked(id))
        };
        let Some(end) = end else {
            return Poll::Ready(Ok((None, None)));
        };
        if !self.stamping {
            self.inner.stamp_sends(true);
            self.stamping = true;
        }
        let total: usize = chunks.into_iter().map(<[u8]>::len).sum();
        let after = (total - end) as u64;
        let limit = (after > self.book.cut_after.load(Ordering::Relaxed)).then_some(end);
        Poll::Ready(Ok((Some(end), limit)))
    }

    /// After a write that moved `n` bytes (`cut`: where a request's end was, if any): record it,
    /// and once everything written is in the socket, place it there.
    fn after_write<'a>(
        &mut self,
        cx: &mut Context<'_>,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        n: usize,
        cut: Option<usize>,
    ) {
        let now = Instant::now();
        if !self.acks {
            self.book.observe(&mut self.write, chunks, n, now, None);
            return;
        }
        let mut in_socket = !self.inner.pending_above_socket();
        if !in_socket && cut.is_some_and(|c| n >= c) {
            // The records carrying a request's end: into the socket now if there is room,
            // else before the next write (or at the next flush).
            in_socket = matches!(
                Pin::new(&mut self.inner).poll_flush(cx),
                Poll::Ready(Ok(()))
            );
            self.flush_owed = !in_socket;
        }
        let offset = in_socket.then(|| self.inner.socket_written());
        self.book.observe(&mut self.write, chunks, n, now, offset);
        if in_socket && cut.is_some_and(|c| n >= c) {
            self.stop_stamping();
        }
    }

    /// The records a request's end left above the socket are in it now.
    fn synced(&mut self) {
        self.flush_owed = false;
        let offset = self.inner.socket_written();
        self.book.lock().sync(offset);
        self.stop_stamping();
    }

    fn stop_stamping(&mut self) {
        if self.stamping {
            self.inner.stamp_sends(false);
            self.stamping = false;
        }
    }
}

impl<S: AsyncWrite + SocketBelow + Unpin> AsyncWrite for FrameTap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let (cut, limit) = ready!(this.before_write(cx, [buf]))?;
        let buf = &buf[..limit.unwrap_or(buf.len()).min(buf.len())];
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                this.after_write(cx, [buf], n, cut);
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
        let (cut, limit) = ready!(this.before_write(cx, bufs.iter().map(|b| &**b)))?;
        // Cut short after a request's end: the slices up to it (allocated only then).
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let limited: Vec<IoSlice<'_>>;
        let bufs = match limit {
            Some(c) if c < total => {
                let mut left = c;
                limited = bufs
                    .iter()
                    .map_while(|b| {
                        (left > 0).then(|| {
                            let k = b.len().min(left);
                            left -= k;
                            IoSlice::new(&b[..k])
                        })
                    })
                    .collect();
                &limited[..]
            }
            _ => bufs,
        };
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                this.after_write(cx, bufs.iter().map(|b| &**b), n, cut);
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        if this.flush_owed {
            this.synced();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::proto::h2_frames::testing::{
        check_against_reference, frame, random_frames, reference, upload_bytes, Rng, PREFACE,
    };
    use crate::proto::h2_frames::{FLAG_END_HEADERS, FLAG_END_STREAM};

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

    /// Not a socket: nothing is placed or stamped.
    impl SocketBelow for Mem {
        fn socket_written(&self) -> u64 {
            self.written.len() as u64
        }

        fn pending_above_socket(&self) -> bool {
            false
        }

        fn stamp_sends(&mut self, _on: bool) {}
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

    #[tokio::test]
    async fn one_write_and_byte_by_byte_are_forwarded_unchanged_and_observed() {
        let bytes = upload_bytes();
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
            let (h, e) = (s.request_start.unwrap(), s.request_end.unwrap());
            assert!(before <= h && h <= e && e <= after);
            check_against_reference(&book.lock().frames, &bytes, true);
        }
    }

    #[tokio::test]
    async fn each_write_is_stamped_after_it_returned() {
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::new(usize::MAX), book.clone());
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x1, FLAG_END_HEADERS, 1, &[0x82; 10]));
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
        let s = book.stream(1);
        let h = s.request_start.unwrap();
        let e = s.request_end.unwrap();
        assert!(
            windows[0].0 <= h && h <= windows[0].1,
            "HEADERS' first byte: write 1"
        );
        assert!(
            windows[2].0 <= e && e <= windows[2].1,
            "DATA's last byte: write 3"
        );
        assert_eq!(s.send_bytes_count, 9 + 10 + 9 + 50);
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
        check_against_reference(&book.lock().frames, &bytes, true);
        assert_eq!(book.stream(1).body_bytes_sent, 120);
        assert!(book.stream(1).request_end.is_some());
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
    async fn each_read_is_stamped_after_it_returned() {
        let interim = frame(0x1, FLAG_END_HEADERS, 1, &[0x08, 0x03, b'1', b'0', b'3']);
        let head = frame(0x1, FLAG_END_HEADERS, 1, &[0x88]);
        let data = frame(0x0, 0, 1, &[5; 30]);
        let trailers = frame(
            0x1,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            1,
            &[0x40, 1, b'a', 1, b'b'],
        );
        let chunks = vec![interim, head, data, trailers];
        let all: Vec<u8> = chunks.concat();
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::reading(chunks, usize::MAX), book.clone());
        let w = read_chunks(&mut tap, 4).await;
        let s = book.stream(1);
        let first = s.first_headers_received_at.unwrap();
        let last = s.response_start.unwrap();
        let end = s.response_end.unwrap();
        assert!(w[0].0 <= first && first <= w[0].1);
        assert!(
            w[1].0 <= last && last <= w[1].1,
            "trailers do not move the final head"
        );
        assert!(first < last);
        assert!(w[3].0 <= end && end <= w[3].1);
        assert_eq!(s.received_byted_count, all.len() as u64);
        check_against_reference(&book.lock().frames, &all, false);
    }

    #[tokio::test]
    async fn random_frames_through_the_tap_in_partial_reads_and_writes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..12 {
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
            assert_eq!(tap.get_ref().written, bytes);
            if round % 2 == 0 {
                check_against_reference(&book.lock().frames, &bytes, true);
            } else {
                assert_eq!(book.connection().total_written, bytes.len() as u64);
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
            check_against_reference(&read_book.lock().frames, &bytes, false);
        }
    }

    #[tokio::test]
    async fn byte_by_byte_reads_are_forwarded_unchanged() {
        let mut rng = Rng(42);
        let mut bytes = frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]);
        bytes.extend(frame(0x3, 0, 3, &8u32.to_be_bytes()));
        bytes.extend((0..1000).map(|_| rng.next() as u8));
        let book = TapBook::new();
        let mut tap = FrameTap::new(Mem::reading(vec![bytes.clone()], 1), book.clone());
        let mut sink = Vec::new();
        tap.read_to_end(&mut sink).await.unwrap();
        assert_eq!(sink, bytes);
        assert_eq!(book.stream(3).reset_received, Some(8));
        check_against_reference(&book.lock().frames, &bytes, false);
    }

    /// Records every byte moved, under the tap (what actually went over the connection), and
    /// where each write that was to be stamped ended.
    struct Recorder<S> {
        inner: S,
        written: Arc<Mutex<Vec<u8>>>,
        read: Arc<Mutex<Vec<u8>>>,
        vectored: bool,
        stamping: bool,
        stamped_ends: Arc<Mutex<Vec<u64>>>,
    }

    impl<S> SocketBelow for Recorder<S> {
        fn socket_written(&self) -> u64 {
            self.written.lock().unwrap().len() as u64
        }

        fn pending_above_socket(&self) -> bool {
            false
        }

        fn stamp_sends(&mut self, on: bool) {
            self.stamping = on;
        }
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
                let mut w = this.written.lock().unwrap();
                w.extend_from_slice(&buf[..n]);
                if this.stamping {
                    this.stamped_ends.lock().unwrap().push(w.len() as u64);
                }
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
                if this.stamping {
                    this.stamped_ends.lock().unwrap().push(w.len() as u64);
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

    /// The offset just past the frame with END_STREAM written on `stream`.
    fn stream_end_offset(bytes: &[u8], stream: u32) -> u64 {
        let mut i = 24;
        while i + 9 <= bytes.len() {
            let h = &bytes[i..i + 9];
            let length = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            i += 9 + length;
            if id == stream && h[3] == 0 && h[4] & FLAG_END_STREAM != 0 {
                return i as u64;
            }
        }
        panic!("no END_STREAM DATA frame on stream {stream}");
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
        let stamped_ends = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            inner: client_io,
            written: written.clone(),
            read: read.clone(),
            vectored,
            stamping: false,
            stamped_ends: stamped_ends.clone(),
        };
        let book = TapBook::new();
        let tap = FrameTap::new(recorder, book.clone()).tracking_acks();
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
        book.track_acks(id);
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
        assert_eq!(s.body_bytes_sent, UP as u64);
        assert_eq!(s.data_received, DOWN as u64);
        let start = s.request_start.unwrap();
        let end = s.request_end.unwrap();
        let head = s.response_start.unwrap();
        let response_end = s.response_end.unwrap();
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
        assert_eq!(s.send_bytes_count, 9 * frames + payload);
        assert!(s.send_bytes_count >= UP as u64 + 9);
        let (frames, payload, data) = frames_on(&read, false, id);
        assert_eq!(data, DOWN as u64);
        assert_eq!(s.received_byted_count, 9 * frames + payload);
        assert!(s.received_byted_count >= DOWN as u64);
        let c = book.connection();
        assert_eq!(c.total_written, written.len() as u64);
        assert_eq!(c.total_read, read.len() as u64);
        check_against_reference(&book.lock().frames, &written, true);
        assert_eq!(c.frames_read, reference(&read, false).frames);

        // The request's end ended a write, which was stamped, and the stream's body was placed
        // in the byte stream up to there: acknowledging one byte less leaves it short.
        let end = stream_end_offset(&written, id);
        let stamped = stamped_ends.lock().unwrap().clone();
        assert!(
            stamped.contains(&end),
            "{end} not in the stamped ends {stamped:?}"
        );
        assert!(
            stamped.iter().all(|&e| e <= end),
            "stamping stopped at the end: {stamped:?}"
        );
        let mut books = book.lock();
        books.acks.acknowledged(end - 1, Instant::now());
        let short = books.acks.stream(id);
        assert!(short.body < UP as u64 && short.end.is_none(), "{short:?}");
        books.acks.acknowledged(end, Instant::now());
        let done = books.acks.stream(id);
        assert_eq!(done.body, UP as u64);
        assert!(
            done.end.is_some_and(|e| !e.exact),
            "no stamp here: {done:?}"
        );
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
