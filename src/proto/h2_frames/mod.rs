//! HTTP/2 frame headers parsed as they go by, and a per-stream ledger of what they say.
//!
//! # Why
//!
//! Over HTTP/2 the profile needs, per request, the moments its HEADERS frame and its last DATA
//! frame went out and its response's frames came in (`requestStart`, `requestEnd`,
//! `responseStart`, `responseEnd`, see `docs/profile.md`), and the bytes it put on the wire at
//! HTTP level (`sendBytesCount`, `receivedBytedCount`: frame headers + payloads). Only the
//! connection's byte stream shows those: `h2` writes frames from its own connection task.
//!
//! This module is the sans-IO half of that measurement. A [`FrameParser`] per direction is fed
//! the bytes each read or write moved, with the instant of that call, and records what their
//! frame headers say into a [`FrameLedger`]: per stream id a [`StreamTap`], and the
//! connection-wide [`ConnectionTap`]. Nothing here reads a socket or a clock; the I/O wrapper
//! that feeds it (`transport::frame_tap`) takes the instants and shares the ledger between the
//! connection task and the upload drivers.
//!
//! # Parsing
//!
//! The parser reads the 9-byte HTTP/2 frame headers (RFC 9113 §4.1: 24-bit length, 8-bit type,
//! 8-bit flags, 31-bit stream id with the reserved bit masked). It is a small state machine
//! (frame header bytes so far, payload bytes remaining, the current frame's type/flags/stream
//! id), so frame headers may be split across calls at any byte, and the same bytes give the same
//! counts however they are split. The work is O(1) per frame and per call (payloads are skipped,
//! not scanned, except the few bytes of GOAWAY, RST_STREAM and received SETTINGS that are
//! recorded, and the pad length byte of a PADDED frame), and nothing is allocated per byte or
//! per frame (only one map entry per new stream).
//!
//! # Precision
//!
//! Every instant recorded is the `now` passed with the [`FrameParser::feed`] call that carried
//! the byte in question; all frames completed by one call share that call's instant. A frame's
//! *first* byte is attributed to the call that carried the first byte of its 9-byte header, its
//! *last* byte to the call that carried the last payload byte (the last header byte for an empty
//! frame). One read or write may be fed in several pieces with the same `now` (the slices of a
//! vectored write): that is the same as feeding them at once. How close `now` is to the wire is
//! the caller's business (the frame tap takes it right after the call that moved the bytes).
//!
//! # Directions
//!
//! The parser is for the *client* side of a connection: the write direction starts with the
//! 24-byte connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which is skipped (exactly 24
//! bytes, not verified) and counted only in [`ConnectionTap::total_written`]; the read direction
//! starts directly with frames.
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
//! # What a stream's bytes carried
//!
//! Beside the totals, each stream's bytes are told apart by what they carried, so that the
//! profile can report the header block, the body and the protocol's own bytes separately, and
//! the three add up to the total exactly, at any moment and however the bytes are split:
//!
//! - *header block*: the header block fragments of HEADERS and CONTINUATION frames (HPACK
//!   bytes as they are on the wire);
//! - *body*: DATA payloads without the pad length byte and padding of PADDED frames;
//! - *framing*: everything else: every 9-byte frame header; the pad length byte, padding and
//!   priority fields (PADDED, PRIORITY flags) of HEADERS and DATA; the whole payload of
//!   RST_STREAM, PRIORITY, WINDOW_UPDATE and PUSH_PROMISE frames on the stream.
//!
//! The parser learns a frame's padding from its first payload byte; the bytes of the payload
//! are classified by their offset in it. A pad length larger than the payload allows (a
//! protocol error) leaves the frame with no content: all of it counts as framing.
//!
//! Memory stays bounded: [`FrameLedger::forget`] drops a stream's entry, and frames that arrive
//! later on a forgotten stream (a late RST_STREAM or WINDOW_UPDATE) do not recreate it. Because
//! each endpoint opens its streams in increasing id order, the ledger keeps one watermark per id
//! parity: a frame on a stream that has no entry creates one only when its id is above every id
//! of the same parity already forgotten.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::time::Instant;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

/// Length of the client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE_LEN: usize = 24;
/// Length of a frame header (RFC 9113 §4.1).
pub(crate) const FRAME_HEADER_LEN: usize = 9;
/// The stream id without the reserved bit.
pub(crate) const STREAM_ID_MASK: u32 = 0x7fff_ffff;

/// Frame type DATA (RFC 9113 §6.1).
pub(crate) const TYPE_DATA: u8 = 0x0;
/// Frame type HEADERS (RFC 9113 §6.2).
pub(crate) const TYPE_HEADERS: u8 = 0x1;
/// Frame type PRIORITY (RFC 9113 §6.3).
pub(crate) const TYPE_PRIORITY: u8 = 0x2;
/// Frame type RST_STREAM (RFC 9113 §6.4).
pub(crate) const TYPE_RST_STREAM: u8 = 0x3;
/// Frame type SETTINGS (RFC 9113 §6.5).
pub(crate) const TYPE_SETTINGS: u8 = 0x4;
/// Frame type PUSH_PROMISE (RFC 9113 §6.6).
pub(crate) const TYPE_PUSH_PROMISE: u8 = 0x5;
/// Frame type GOAWAY (RFC 9113 §6.8).
pub(crate) const TYPE_GOAWAY: u8 = 0x7;
/// Frame type WINDOW_UPDATE (RFC 9113 §6.9).
pub(crate) const TYPE_WINDOW_UPDATE: u8 = 0x8;
/// Frame type CONTINUATION (RFC 9113 §6.10).
pub(crate) const TYPE_CONTINUATION: u8 = 0x9;

/// Flag END_STREAM on DATA and HEADERS.
pub(crate) const FLAG_END_STREAM: u8 = 0x1;
/// Flag ACK on SETTINGS (and PING).
pub(crate) const FLAG_ACK: u8 = 0x1;
/// Flag END_HEADERS on HEADERS, PUSH_PROMISE and CONTINUATION.
pub(crate) const FLAG_END_HEADERS: u8 = 0x4;
/// Flag PADDED on DATA, HEADERS and PUSH_PROMISE: a pad length byte leads the payload.
pub(crate) const FLAG_PADDED: u8 = 0x8;
/// Flag PRIORITY on HEADERS: 5 bytes of priority fields follow the pad length.
pub(crate) const FLAG_PRIORITY: u8 = 0x20;
/// Length of the priority fields of a HEADERS frame with PRIORITY.
const PRIORITY_FIELDS_LEN: usize = 5;

/// The SETTINGS parameter `SETTINGS_MAX_CONCURRENT_STREAMS` (RFC 9113 §6.5.2).
pub(crate) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// Length of one SETTINGS entry: a 2-byte identifier and a 4-byte value.
const SETTING_LEN: usize = 6;

/// Per-stream observations, named as the profile names what they become for the stream's
/// request (`request_start` is `requestStart`, `send_bytes_count` is `sendBytesCount`, ...).
///
/// Every instant is the `now` of the [`FrameParser::feed`] call that carried the byte named (see
/// the module docs for the precision this gives).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamTap {
    /// The write that carried the first byte of the stream's first HEADERS frame
    /// (`requestStart`).
    pub request_start: Option<Instant>,
    /// The write that carried the last byte of the frame with END_STREAM (flag 0x1 on HEADERS or
    /// DATA) sent on the stream (`requestEnd`). When END_STREAM is on a HEADERS frame without
    /// END_HEADERS (a header block continued in CONTINUATION frames), the request ends with the
    /// block: the time is that of the last byte of the CONTINUATION carrying END_HEADERS.
    pub request_end: Option<Instant>,
    /// Every byte of the stream's frames written so far: 9-byte frame headers + payloads of
    /// HEADERS, CONTINUATION, DATA, RST_STREAM, PRIORITY and WINDOW_UPDATE frames on the stream.
    /// Counted as the bytes are written (a frame header when its 9th byte is written, payload
    /// bytes as they go), so it is exact at any moment.
    pub send_bytes_count: u64,
    /// DATA frame payload bytes written, including the pad-length byte and padding of PADDED
    /// frames (`h2` never pads, so for it this is the body size).
    pub body_bytes_sent: u64,
    /// The read that carried the first byte of the most recent response head: the last HEADERS
    /// frame received on the stream before any DATA frame. Interim (1xx) heads come first, so
    /// once the driver has the final head this is `responseStart`. A HEADERS frame received
    /// after a DATA frame is a trailer block and does not move it. (Without decoding HPACK, a
    /// trailer block after a final head *without* a body is indistinguishable from a final head
    /// after a 1xx, and does move it.)
    pub response_start: Option<Instant>,
    /// The read that carried the first byte of the first HEADERS frame received on the stream
    /// (the first interim response if any, else the final head).
    pub first_headers_received_at: Option<Instant>,
    /// The read that carried the last byte of the received frame with END_STREAM
    /// (`responseEnd`), with the same CONTINUATION rule as [`request_end`](Self::request_end).
    pub response_end: Option<Instant>,
    /// Every byte of the stream's frames received so far (headers + payloads, all stream-level
    /// frame types, including PUSH_PROMISE sent on the stream).
    pub received_byted_count: u64,
    /// DATA frame payload bytes received (including padding, as for `body_bytes_sent`).
    pub data_received: u64,
    /// Of `send_bytes_count`: header block fragment bytes of HEADERS and CONTINUATION frames
    /// (module docs, "What a stream's bytes carried").
    pub header_block_sent: u64,
    /// Of `send_bytes_count`: frame headers, padding, priority fields and the payloads of the
    /// stream's control frames. `header_block_sent + (body_bytes_sent - data_padding_sent) +
    /// framing_sent == send_bytes_count`.
    pub framing_sent: u64,
    /// Of `body_bytes_sent`: the pad length bytes and padding of PADDED DATA frames (also in
    /// `framing_sent`; `h2` never pads, so 0 with it).
    pub data_padding_sent: u64,
    /// Of `received_byted_count`: header block fragment bytes of HEADERS and CONTINUATION
    /// frames (interim heads, the final head, trailers).
    pub header_block_received: u64,
    /// Of `received_byted_count`: frame headers, padding, priority fields and the payloads of
    /// the stream's control frames. `header_block_received + (data_received -
    /// data_padding_received) + framing_received == received_byted_count`.
    pub framing_received: u64,
    /// Of `data_received`: the pad length bytes and padding of PADDED DATA frames (also in
    /// `framing_received`).
    pub data_padding_received: u64,
    /// Error code of the first RST_STREAM received on the stream (a frame shorter than the
    /// 4-byte error code is counted but not recorded).
    pub reset_received: Option<u32>,
}

/// Connection-wide observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConnectionTap {
    /// All bytes written, the 24-byte preface included.
    pub total_written: u64,
    /// All bytes read.
    pub total_read: u64,
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

/// A stream's entry: the snapshot plus what the parser needs to remember about the stream.
#[derive(Debug, Default)]
struct StreamEntry {
    tap: StreamTap,
    /// A DATA frame header has been received: later HEADERS frames are trailers.
    data_frame_received: bool,
    /// In [`FrameLedger::touched`] since the last [`FrameLedger::take_written`].
    touched: bool,
}

/// What the frames of one connection said: per-stream entries and the connection-wide counters.
///
/// Both directions' [`FrameParser`]s write into the same ledger; readers take snapshots with
/// [`stream`](Self::stream) and [`connection`](Self::connection), and drop finished streams with
/// [`forget`](Self::forget). A plain struct: whoever shares it adds the lock.
#[derive(Debug, Default)]
pub(crate) struct FrameLedger {
    streams: HashMap<u32, StreamEntry>,
    connection: ConnectionTap,
    /// Highest forgotten stream id, per id parity (index `id & 1`).
    forgotten_max: [u32; 2],
    /// Streams whose DATA payload or request end was written since the last
    /// [`take_written`](Self::take_written), in the order first touched.
    touched: Vec<u32>,
}

impl FrameLedger {
    /// A snapshot of stream `id` (all defaults if nothing was seen on it, or it was forgotten).
    /// The reserved bit of `id` is ignored.
    pub(crate) fn stream(&self, id: u32) -> StreamTap {
        self.streams
            .get(&(id & STREAM_ID_MASK))
            .map(|e| e.tap.clone())
            .unwrap_or_default()
    }

    /// The connection-wide counters.
    pub(crate) fn connection(&self) -> &ConnectionTap {
        &self.connection
    }

    /// The streams whose body bytes or request end were written since the last call (each
    /// once, in the order first touched), and forgets that they were. Whoever places body
    /// bytes in the connection's byte stream (acknowledged progress) asks this after each
    /// write.
    pub(crate) fn take_written(&mut self, out: &mut Vec<u32>) {
        out.clear();
        for id in self.touched.drain(..) {
            if let Some(entry) = self.streams.get_mut(&id) {
                entry.touched = false;
                out.push(id);
            }
        }
    }

    /// Note that stream `id`'s entry changed in the write direction.
    fn touch(&mut self, id: u32) {
        if let Some(entry) = self.streams.get_mut(&id) {
            if !entry.touched {
                entry.touched = true;
                self.touched.push(id);
            }
        }
    }

    /// Drops a finished stream's entry. Frames seen later on it (or on any lower id of the same
    /// parity that has no entry) only count toward the connection. The reserved bit of `id` is
    /// ignored; stream 0 has no entry and is left alone.
    pub(crate) fn forget(&mut self, id: u32) {
        let id = id & STREAM_ID_MASK;
        if id == 0 {
            return;
        }
        self.streams.remove(&id);
        let max = &mut self.forgotten_max[(id & 1) as usize];
        *max = (*max).max(id);
    }

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

/// Which way the bytes a [`FrameParser`] sees go, from the client's side of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Written by the client: the connection preface, then frames.
    Write,
    /// Read by the client: frames from the first byte.
    Read,
}

/// The frame whose header has been parsed and whose payload is being skipped.
#[derive(Debug, Clone, Copy, Default)]
struct CurrentFrame {
    kind: u8,
    flags: u8,
    stream: u32,
    /// The frame counts toward `stream`'s entry.
    attributed: bool,
    /// Payload bytes to capture (GOAWAY: 8, RST_STREAM: 4, received only).
    capture: usize,
    /// The payload's length.
    length: usize,
}

/// Payload bytes of one call, by what they carried.
#[derive(Debug, Default)]
struct CarriedCounts {
    header_block: u64,
    body: u64,
    data_padding: u64,
    framing: u64,
}

/// What a payload byte of a stream's frame carried (module docs, "What a stream's bytes
/// carried").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carried {
    HeaderBlock,
    Body,
    /// Framing that is part of a DATA payload: its pad length byte and padding.
    DataPadding,
    Framing,
}

impl CurrentFrame {
    /// The frame's payload starts with a pad length byte.
    fn padded(&self) -> bool {
        matches!(self.kind, TYPE_DATA | TYPE_HEADERS) && self.flags & FLAG_PADDED != 0
    }

    /// What the payload bytes from `offset` on carry, and the offset where that may change.
    /// `pad` is the pad length, `None` while the pad length byte of a PADDED frame is unseen
    /// (then `offset` is 0: that byte).
    fn carried(&self, offset: usize, pad: Option<usize>) -> (Carried, usize) {
        let content = match self.kind {
            TYPE_DATA => Carried::Body,
            TYPE_HEADERS | TYPE_CONTINUATION => Carried::HeaderBlock,
            _ => return (Carried::Framing, self.length),
        };
        let outside = if self.kind == TYPE_DATA {
            Carried::DataPadding
        } else {
            Carried::Framing
        };
        let Some(pad) = pad else {
            return (outside, 1);
        };
        let priority = self.kind == TYPE_HEADERS && self.flags & FLAG_PRIORITY != 0;
        let start = usize::from(self.padded()) + if priority { PRIORITY_FIELDS_LEN } else { 0 };
        // A pad length over what the payload holds (a protocol error) leaves no content.
        let end = self.length.saturating_sub(pad).max(start);
        if offset < start {
            (outside, start.min(self.length))
        } else if offset < end {
            (content, end)
        } else {
            (outside, self.length)
        }
    }
}

/// Whether a frame that just ended ends its stream's side (END_STREAM on DATA, on a complete
/// HEADERS block, or on the CONTINUATION that completes a HEADERS block that had it), keeping
/// `end_pending` (a HEADERS with END_STREAM but without END_HEADERS) up to date.
fn ends_stream(kind: u8, flags: u8, stream: u32, end_pending: &mut Option<u32>) -> bool {
    match kind {
        TYPE_DATA => flags & FLAG_END_STREAM != 0,
        TYPE_HEADERS if flags & FLAG_END_STREAM != 0 => {
            if flags & FLAG_END_HEADERS != 0 {
                true
            } else {
                *end_pending = Some(stream);
                false
            }
        }
        TYPE_CONTINUATION if flags & FLAG_END_HEADERS != 0 && *end_pending == Some(stream) => {
            *end_pending = None;
            true
        }
        _ => false,
    }
}

/// One direction's incremental frame-header parser.
///
/// Feed it every byte that went in its direction, in order, each call's bytes with that call's
/// instant; it records what the frames say into a [`FrameLedger`].
#[derive(Debug)]
pub(crate) struct FrameParser {
    direction: Direction,
    /// Preface bytes still to skip (write direction only).
    preface_left: usize,
    header: [u8; FRAME_HEADER_LEN],
    /// Header bytes accumulated; `FRAME_HEADER_LEN` while in a frame's payload.
    header_len: usize,
    /// The instant of the call that carried the current frame's first header byte: `Some` from
    /// that byte to the frame's last byte, `None` between frames.
    started_at: Option<Instant>,
    frame: CurrentFrame,
    /// Payload bytes of the current frame not yet seen.
    remaining: usize,
    captured: [u8; 8],
    captured_len: usize,
    /// The SETTINGS entry (2-byte id, 4-byte value) being read, received direction.
    setting: [u8; SETTING_LEN],
    setting_len: usize,
    /// A HEADERS frame with END_STREAM but without END_HEADERS was seen on this stream: the
    /// stream ends with the CONTINUATION that carries END_HEADERS.
    end_pending: Option<u32>,
    /// The current frame's pad length: 0 unless PADDED, `None` until its first payload byte.
    pad: Option<usize>,
}

impl FrameParser {
    /// A parser for the bytes going in `direction`, from the connection's first byte.
    pub(crate) fn new(direction: Direction) -> FrameParser {
        FrameParser {
            direction,
            preface_left: match direction {
                Direction::Write => PREFACE_LEN,
                Direction::Read => 0,
            },
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            started_at: None,
            frame: CurrentFrame::default(),
            remaining: 0,
            captured: [0; 8],
            captured_len: 0,
            setting: [0; SETTING_LEN],
            setting_len: 0,
            end_pending: None,
            pad: Some(0),
        }
    }

    /// Observes `bytes`, the next bytes in this parser's direction, moved by a call made at
    /// `now`: counts them toward the connection and records what their frames say in `ledger`.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], now: Instant, ledger: &mut FrameLedger) {
        let moved = bytes.len() as u64;
        match self.direction {
            Direction::Write => ledger.connection.total_written += moved,
            Direction::Read => ledger.connection.total_read += moved,
        }
        if self.preface_left > 0 {
            let k = self.preface_left.min(bytes.len());
            self.preface_left -= k;
            bytes = &bytes[k..];
        }
        while !bytes.is_empty() {
            if self.header_len < FRAME_HEADER_LEN {
                let started_at = *self.started_at.get_or_insert(now);
                let k = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + k].copy_from_slice(&bytes[..k]);
                self.header_len += k;
                bytes = &bytes[k..];
                if self.header_len == FRAME_HEADER_LEN {
                    self.begin_frame(started_at, ledger);
                    if self.remaining == 0 {
                        self.end_frame(now, ledger);
                    }
                }
            } else {
                let k = self.remaining.min(bytes.len());
                self.payload(&bytes[..k], ledger);
                self.remaining -= k;
                bytes = &bytes[k..];
                if self.remaining == 0 {
                    self.end_frame(now, ledger);
                }
            }
        }
    }

    /// If `chunks`, the next bytes in this parser's direction, hold the last byte of a frame that
    /// ends the side of a stream `wanted` accepts (see [`StreamTap::request_end`]), how many
    /// bytes lead up to and include the first such byte. The parser is not moved: this looks ahead, so that a writer
    /// can end a write call exactly there (the frame tap does, to stamp the acknowledgement of a
    /// request's last byte).
    pub(crate) fn bytes_to_stream_end<'a>(
        &self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        wanted: impl Fn(u32) -> bool,
    ) -> Option<usize> {
        let mut preface_left = self.preface_left;
        let mut header = self.header;
        let mut header_len = self.header_len;
        let (mut kind, mut flags, mut stream) =
            (self.frame.kind, self.frame.flags, self.frame.stream);
        let mut remaining = self.remaining;
        let mut end_pending = self.end_pending;
        let mut pos = 0;
        for chunk in chunks {
            let mut bytes = chunk;
            if preface_left > 0 {
                let k = preface_left.min(bytes.len());
                preface_left -= k;
                pos += k;
                bytes = &bytes[k..];
            }
            while !bytes.is_empty() {
                if header_len < FRAME_HEADER_LEN {
                    let k = (FRAME_HEADER_LEN - header_len).min(bytes.len());
                    header[header_len..header_len + k].copy_from_slice(&bytes[..k]);
                    header_len += k;
                    pos += k;
                    bytes = &bytes[k..];
                    if header_len < FRAME_HEADER_LEN {
                        continue;
                    }
                    remaining = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                    (kind, flags) = (header[3], header[4]);
                    stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]])
                        & STREAM_ID_MASK;
                    if kind != TYPE_CONTINUATION {
                        end_pending = None;
                    }
                } else {
                    let k = remaining.min(bytes.len());
                    remaining -= k;
                    pos += k;
                    bytes = &bytes[k..];
                }
                if header_len == FRAME_HEADER_LEN && remaining == 0 {
                    header_len = 0;
                    if stream != 0
                        && ends_stream(kind, flags, stream, &mut end_pending)
                        && wanted(stream)
                    {
                        return Some(pos);
                    }
                }
            }
        }
        None
    }

    /// The 9th header byte has been seen: decode the header and account for it. `started_at` is
    /// the instant of the call that carried the header's first byte.
    fn begin_frame(&mut self, started_at: Instant, ledger: &mut FrameLedger) {
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
        self.frame = CurrentFrame {
            kind,
            flags,
            stream,
            attributed,
            capture,
            length,
        };
        self.pad = if self.frame.padded() { None } else { Some(0) };
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
        let Some(entry) = ledger.entry(stream) else {
            return;
        };
        match self.direction {
            Direction::Write => {
                entry.tap.send_bytes_count += FRAME_HEADER_LEN as u64;
                entry.tap.framing_sent += FRAME_HEADER_LEN as u64;
                if kind == TYPE_HEADERS && entry.tap.request_start.is_none() {
                    entry.tap.request_start = Some(started_at);
                }
            }
            Direction::Read => {
                entry.tap.received_byted_count += FRAME_HEADER_LEN as u64;
                entry.tap.framing_received += FRAME_HEADER_LEN as u64;
                match kind {
                    TYPE_HEADERS => {
                        entry
                            .tap
                            .first_headers_received_at
                            .get_or_insert(started_at);
                        if !entry.data_frame_received {
                            entry.tap.response_start = Some(started_at);
                        }
                    }
                    TYPE_DATA => entry.data_frame_received = true,
                    _ => {}
                }
            }
        }
    }

    /// Some payload bytes of the current frame went by.
    fn payload(&mut self, bytes: &[u8], ledger: &mut FrameLedger) {
        let frame = self.frame;
        if self.direction == Direction::Read
            && frame.kind == TYPE_SETTINGS
            && frame.stream == 0
            && frame.flags & FLAG_ACK == 0
        {
            for &b in bytes {
                self.setting[self.setting_len] = b;
                self.setting_len += 1;
                if self.setting_len == SETTING_LEN {
                    self.setting_len = 0;
                    let id = u16::from_be_bytes([self.setting[0], self.setting[1]]);
                    let value = u32::from_be_bytes([
                        self.setting[2],
                        self.setting[3],
                        self.setting[4],
                        self.setting[5],
                    ]);
                    if id == SETTINGS_MAX_CONCURRENT_STREAMS {
                        ledger.connection.max_concurrent_streams = Some(value);
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
        let Some(entry) = ledger.entry(self.frame.stream) else {
            return;
        };
        let n = bytes.len() as u64;
        let data = self.frame.kind == TYPE_DATA;
        let carried = self.carried(bytes);
        debug_assert_eq!(
            carried.header_block + carried.body + carried.data_padding + carried.framing,
            n
        );
        let tap = &mut entry.tap;
        match self.direction {
            Direction::Write => {
                tap.send_bytes_count += n;
                tap.header_block_sent += carried.header_block;
                tap.framing_sent += carried.framing + carried.data_padding;
                tap.data_padding_sent += carried.data_padding;
                if data {
                    tap.body_bytes_sent += n;
                    ledger.touch(self.frame.stream);
                }
            }
            Direction::Read => {
                tap.received_byted_count += n;
                tap.header_block_received += carried.header_block;
                tap.framing_received += carried.framing + carried.data_padding;
                tap.data_padding_received += carried.data_padding;
                if data {
                    tap.data_received += n;
                }
            }
        }
    }

    /// What the payload bytes `bytes` of the current frame carried (they start at the offset
    /// `length - remaining`), learning the pad length from a PADDED frame's first byte.
    fn carried(&mut self, mut bytes: &[u8]) -> CarriedCounts {
        let mut counts = CarriedCounts::default();
        let mut offset = self.frame.length - self.remaining;
        while !bytes.is_empty() {
            let (kind, until) = self.frame.carried(offset, self.pad);
            let k = until.saturating_sub(offset).clamp(1, bytes.len());
            if self.pad.is_none() {
                self.pad = Some(usize::from(bytes[0]));
            }
            let counter = match kind {
                Carried::HeaderBlock => &mut counts.header_block,
                Carried::Body => &mut counts.body,
                Carried::DataPadding => &mut counts.data_padding,
                Carried::Framing => &mut counts.framing,
            };
            *counter += k as u64;
            offset += k;
            bytes = &bytes[k..];
        }
        counts
    }

    /// The current frame's last byte went by in the call made at `now`.
    fn end_frame(&mut self, now: Instant, ledger: &mut FrameLedger) {
        self.header_len = 0;
        self.started_at = None;
        let frame = self.frame;
        match self.direction {
            Direction::Write => ledger.connection.frames_written += 1,
            Direction::Read => ledger.connection.frames_read += 1,
        }
        if frame.kind == TYPE_GOAWAY && frame.capture == 8 && self.captured_len == 8 {
            let c = &self.captured;
            let last = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) & STREAM_ID_MASK;
            let code = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            ledger.connection.goaway_received = Some((last, code));
        }
        if !frame.attributed {
            return;
        }
        let end_stream = ends_stream(frame.kind, frame.flags, frame.stream, &mut self.end_pending);
        let reset = (frame.kind == TYPE_RST_STREAM && frame.capture == 4 && self.captured_len == 4)
            .then(|| u32::from_be_bytes(self.captured[..4].try_into().unwrap_or([0; 4])));
        if !end_stream && reset.is_none() {
            return;
        }
        let Some(entry) = ledger.entry(frame.stream) else {
            return;
        };
        if end_stream {
            let end = match self.direction {
                Direction::Write => &mut entry.tap.request_end,
                Direction::Read => &mut entry.tap.response_end,
            };
            end.get_or_insert(now);
        }
        if let Some(code) = reset {
            entry.tap.reset_received.get_or_insert(code);
        }
        if end_stream && self.direction == Direction::Write {
            ledger.touch(frame.stream);
        }
    }
}
