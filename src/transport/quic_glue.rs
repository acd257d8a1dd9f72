//! The glue between quinn (QUIC) and the `h3` crate (HTTP/3): our implementation of h3's `quic`
//! traits over quinn's connection and streams.
//!
//! `h3-quinn` exists for this, but it cannot tell us what we need, and it copies every chunk:
//!
//! - **Timing and byte counts per request stream.** Each bidirectional stream we open gets a
//!   [`StreamRecord`], filled where the bytes cross into and out of quinn: when the first and
//!   last bytes were accepted by quinn's send buffer (the HEADERS frame first, so that is
//!   `requestStart`), when the stream was finished (`requestEnd`), when quinn delivered the first
//!   and the last bytes of the response stream (`responseStart`, `responseEnd`), and how many
//!   bytes went each way at HTTP/3 level (frame headers, QPACK blocks and payloads:
//!   `sendBytesCount`, `receivedBytedCount`), told apart by what they carried
//!   ([`crate::proto::h3_frames`], fed exactly the bytes quinn accepted and delivered). This is
//!   the QUIC counterpart of the HTTP/2 [`FrameTap`](super::frame_tap). The h3 connection finds
//!   a stream's record in the connection's [`QuicTapBook`] by the stream id.
//! - **No copy of file chunks.** h3 hands each DATA frame to the glue as a `WriteBuf` (frame
//!   header, then the payload `Buf`). `h3-quinn` copies it into quinn with `write`. Here the
//!   uploader announces the `Bytes` it is about to send ([`StreamRecord::offer`]); when the
//!   frame's payload is exactly those bytes (same address, same length: checked, never
//!   assumed), the glue hands quinn a clone of that `Bytes` with `write_chunks` instead, and only
//!   the few bytes of frame header are copied. Anything else is copied, as `h3-quinn` would.
//! - **An unfinished stream is reset when dropped**, with `H3_REQUEST_CANCELLED`. quinn's own
//!   `SendStream` *finishes* a stream it drops, which after an abort or a timeout would present
//!   a truncated body to the server as a complete one.
//!
//! Nothing here panics on the peer's behaviour: errors become h3's error types.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use quinn::VarInt;

use super::quic_acks::{stamped_stop, AckLog, StreamAcked};
use crate::measure::StreamStamps;
use crate::proto::h3_frames::FrameCounter;

/// `H3_REQUEST_CANCELLED` (RFC 9114 §8.1): the code of a stream we give up.
pub(crate) const H3_REQUEST_CANCELLED: u64 = 0x10c;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Opened = Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>;
/// A chunk read hands the stream back with its result.
type ChunkRead = (
    quinn::RecvStream,
    Result<Option<quinn::Chunk>, quinn::ReadError>,
);

/// What the glue saw of one request stream. Instants are taken as the bytes cross into or out
/// of quinn (see the module docs); fields are named as the profile names what they become.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamTaps {
    /// quinn gave us the stream (a stream-count limit of the server may delay this).
    pub opened_at: Option<Instant>,
    /// quinn accepted the first bytes of the stream: the start of the HEADERS frame
    /// (`requestStart`).
    pub request_start: Option<Instant>,
    /// quinn accepted the latest bytes.
    pub last_write_at: Option<Instant>,
    /// The stream was finished (FIN) after its last byte: the request is complete
    /// (`requestEnd`).
    pub request_end: Option<Instant>,
    /// Bytes of the stream quinn accepted (HTTP/3 frames, headers included: `sendBytesCount`).
    pub send_bytes_count: u64,
    /// File bytes handed to quinn without a copy.
    pub zero_copy_bytes: u64,
    /// Bytes that had to be copied into quinn (frame headers, QPACK blocks, unannounced data).
    pub copied_bytes: u64,
    /// quinn delivered the first bytes of the response stream (`responseStart`).
    pub response_start: Option<Instant>,
    /// quinn delivered the end of the response stream (FIN: `responseEnd`).
    pub response_end: Option<Instant>,
    /// Bytes of the response stream (HTTP/3 frames: `receivedBytedCount`).
    pub received_byted_count: u64,
    /// The bytes quinn accepted, by what their frames carried.
    pub sent_frames: FrameCounter,
    /// The bytes quinn delivered, by what their frames carried.
    pub received_frames: FrameCounter,
}

/// The shared record of one request stream: its taps, and the payload announced for the next
/// DATA frame.
#[derive(Default)]
pub(crate) struct StreamRecord {
    taps: Mutex<StreamTaps>,
    offered: Mutex<Option<Bytes>>,
    /// Set when the stream is finished: resolves to when the peer had acknowledged every byte
    /// of it (quinn's `stopped()` yielding no code, timed by [`stamped_stop`]), `None` if it
    /// stopped the stream or the connection was lost first.
    acked: Mutex<Option<AckWatch>>,
    /// The connection's ACK batches.
    ack_log: Arc<AckLog>,
}

/// A future telling when every byte of a finished stream was acknowledged, if it was.
pub(crate) type AckWatch = BoxFuture<Option<StreamAcked>>;

impl std::fmt::Debug for StreamRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRecord")
            .field("taps", &self.taps())
            .finish_non_exhaustive()
    }
}

impl StreamTaps {
    /// What the profile takes of the stream: its [`StreamStamps`], with the request's head
    /// written at `request_head_end` (the last write accepted when h3 had sent the HEADERS
    /// frame). Body bytes are the DATA payloads quinn accepted.
    pub(crate) fn stamps(&self, request_head_end: Option<Instant>) -> StreamStamps {
        let (sent, received) = (self.sent_frames.bytes(), self.received_frames.bytes());
        StreamStamps {
            request_start: self.request_start,
            request_head_end,
            request_end: self.request_end,
            response_start: self.response_start,
            response_end: self.response_end,
            send_bytes_count: self.send_bytes_count,
            body_bytes_sent: sent.body,
            received_byted_count: self.received_byted_count,
            request_header_bytes: sent.header_block,
            request_framing_bytes: sent.framing,
            response_header_bytes: received.header_block,
            response_framing_bytes: received.framing,
        }
    }
}

impl StreamRecord {
    /// A copy of what was seen so far.
    pub(crate) fn taps(&self) -> StreamTaps {
        self.taps.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut StreamTaps)) {
        f(&mut self.taps.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Announce that the next DATA frame's payload is `payload`, so the glue can hand quinn
    /// this very `Bytes` instead of copying it.
    pub(crate) fn offer(&self, payload: &Bytes) {
        *self.offered.lock().unwrap_or_else(|p| p.into_inner()) = Some(payload.clone());
    }

    /// The acknowledgement watch of the finished stream (once).
    pub(crate) fn take_ack_watch(&self) -> Option<AckWatch> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The announced payload, if `rest` (what is left of the frame after its header) is it.
    fn take_offered(&self, rest: &[u8]) -> Option<Bytes> {
        let mut offered = self.offered.lock().unwrap_or_else(|p| p.into_inner());
        match offered.as_ref() {
            Some(b) if b.len() == rest.len() && std::ptr::eq(b.as_ptr(), rest.as_ptr()) => {
                offered.take()
            }
            _ => None,
        }
    }
}

/// The records of a connection's request streams, by stream id, until the uploader takes them.
#[derive(Debug, Default)]
pub(crate) struct QuicTapBook {
    streams: Mutex<std::collections::HashMap<u64, Arc<StreamRecord>>>,
    ack_log: Arc<AckLog>,
}

impl QuicTapBook {
    /// The book of a connection whose ACK batches go to `ack_log`.
    pub(crate) fn new(ack_log: Arc<AckLog>) -> QuicTapBook {
        QuicTapBook {
            streams: Mutex::default(),
            ack_log,
        }
    }

    fn open(&self, id: u64) -> Arc<StreamRecord> {
        let record = Arc::new(StreamRecord {
            ack_log: self.ack_log.clone(),
            ..StreamRecord::default()
        });
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, record.clone());
        record
    }

    /// Take the record of request stream `id` (the glue's streams keep their own reference).
    pub(crate) fn take(&self, id: u64) -> Option<Arc<StreamRecord>> {
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }
}

fn connection_error(e: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: close.error_code.into_inner(),
            }
        }
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn stream_connection_error(e: quinn::ConnectionError) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming {
        connection_error: connection_error(e),
    }
}

fn write_error(e: quinn::WriteError) -> StreamErrorIncoming {
    match e {
        quinn::WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(e) => stream_connection_error(e),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn read_error(e: quinn::ReadError) -> StreamErrorIncoming {
    match e {
        quinn::ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::ReadError::ConnectionLost(e) => stream_connection_error(e),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

/// h3's id for a quinn stream. quinn's ids are QUIC varints (< 2^62), which h3 accepts; the error
/// is for completeness.
fn h3_id(id: quinn::StreamId) -> Result<StreamId, String> {
    StreamId::try_from(u64::from(id)).map_err(|e| format!("stream id {id}: {e}"))
}

/// Poll the quinn operation pending in `slot` (accepting or opening a stream), starting it with
/// `start` when none is; the slot is empty again once it completes.
fn poll_op<T>(
    slot: &mut Option<BoxFuture<T>>,
    cx: &mut Context<'_>,
    start: impl FnOnce() -> BoxFuture<T>,
) -> Poll<T> {
    let op = slot.get_or_insert_with(start);
    let out = ready!(op.as_mut().poll(cx));
    *slot = None;
    Poll::Ready(out)
}

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

/// A QUIC connection as h3 sees it.
pub(crate) struct QuicConn {
    conn: quinn::Connection,
    opener: QuicOpener,
    accepting_uni: Option<BoxFuture<Result<quinn::RecvStream, quinn::ConnectionError>>>,
    accepting_bi: Option<BoxFuture<Opened>>,
}

impl QuicConn {
    pub(crate) fn new(conn: quinn::Connection, book: Arc<QuicTapBook>) -> Self {
        QuicConn {
            opener: QuicOpener {
                conn: conn.clone(),
                book,
                opening_bi: None,
                opening_uni: None,
            },
            conn,
            accepting_uni: None,
            accepting_bi: None,
        }
    }
}

impl<B: Buf> quic::Connection<B> for QuicConn {
    type RecvStream = QuicRecv;
    type OpenStreams = QuicOpener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::RecvStream, ConnectionErrorIncoming>> {
        let conn = self.conn.clone();
        let result = ready!(poll_op(&mut self.accepting_uni, cx, || {
            Box::pin(async move { conn.accept_uni().await })
        }));
        let stream = result.map_err(connection_error)?;
        Poll::Ready(QuicRecv::new(stream, None).map_err(ConnectionErrorIncoming::InternalError))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        let conn = self.conn.clone();
        let result = ready!(poll_op(&mut self.accepting_bi, cx, || {
            Box::pin(async move { conn.accept_bi().await })
        }));
        let (send, recv) = result.map_err(connection_error)?;
        Poll::Ready(QuicBidi::new(send, recv, None).map_err(ConnectionErrorIncoming::InternalError))
    }

    fn opener(&self) -> Self::OpenStreams {
        self.opener.clone()
    }
}

impl<B: Buf> quic::OpenStreams<B> for QuicConn {
    type BidiStream = QuicBidi;
    type SendStream = QuicSend;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        <QuicOpener as quic::OpenStreams<B>>::poll_open_bidi(&mut self.opener, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        <QuicOpener as quic::OpenStreams<B>>::poll_open_send(&mut self.opener, cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

/// Opens streams on a connection (h3 keeps one per request sender).
pub(crate) struct QuicOpener {
    conn: quinn::Connection,
    book: Arc<QuicTapBook>,
    opening_bi: Option<BoxFuture<Opened>>,
    opening_uni: Option<BoxFuture<Result<quinn::SendStream, quinn::ConnectionError>>>,
}

impl Clone for QuicOpener {
    fn clone(&self) -> Self {
        QuicOpener {
            conn: self.conn.clone(),
            book: self.book.clone(),
            opening_bi: None,
            opening_uni: None,
        }
    }
}

impl<B: Buf> quic::OpenStreams<B> for QuicOpener {
    type BidiStream = QuicBidi;
    type SendStream = QuicSend;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        let conn = self.conn.clone();
        let result = ready!(poll_op(&mut self.opening_bi, cx, || {
            Box::pin(async move { conn.open_bi().await })
        }));
        let (send, recv) = result.map_err(stream_connection_error)?;
        // Every bidirectional stream a client opens is a request stream: record it.
        let record = self.book.open(u64::from(send.id()));
        record.update(|t| t.opened_at = Some(Instant::now()));
        Poll::Ready(
            QuicBidi::new(send, recv, Some(record))
                .map_err(|e| StreamErrorIncoming::Unknown(e.into())),
        )
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        let conn = self.conn.clone();
        let result = ready!(poll_op(&mut self.opening_uni, cx, || {
            Box::pin(async move { conn.open_uni().await })
        }));
        let stream = result.map_err(stream_connection_error)?;
        Poll::Ready(QuicSend::new(stream, None).map_err(|e| StreamErrorIncoming::Unknown(e.into())))
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

/// A request stream: both directions.
pub(crate) struct QuicBidi {
    send: QuicSend,
    recv: QuicRecv,
}

impl QuicBidi {
    fn new(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        record: Option<Arc<StreamRecord>>,
    ) -> Result<Self, String> {
        Ok(QuicBidi {
            send: QuicSend::new(send, record.clone())?,
            recv: QuicRecv::new(recv, record)?,
        })
    }
}

impl<B: Buf> quic::BidiStream<B> for QuicBidi {
    type SendStream = QuicSend;
    type RecvStream = QuicRecv;

    fn split(self) -> (Self::SendStream, Self::RecvStream) {
        (self.send, self.recv)
    }
}

impl quic::RecvStream for QuicBidi {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Self::Buf>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code)
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for QuicBidi {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        <QuicSend as quic::SendStream<B>>::poll_ready(&mut self.send, cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        <QuicSend as quic::SendStream<B>>::poll_finish(&mut self.send, cx)
    }

    fn reset(&mut self, reset_code: u64) {
        <QuicSend as quic::SendStream<B>>::reset(&mut self.send, reset_code)
    }

    fn send_id(&self) -> StreamId {
        <QuicSend as quic::SendStream<B>>::send_id(&self.send)
    }
}

/// The sending half of a stream.
pub(crate) struct QuicSend {
    stream: quinn::SendStream,
    id: StreamId,
    /// Chunks given to `send_data` that quinn has not accepted yet.
    pending: Vec<Bytes>,
    /// Scratch: the pending chunks as they were before a write (quinn empties or advances the
    /// ones it accepts), for the record's frame counter.
    before_write: Vec<Bytes>,
    record: Option<Arc<StreamRecord>>,
    /// Finished or reset: nothing to do on drop.
    done: bool,
}

impl QuicSend {
    fn new(stream: quinn::SendStream, record: Option<Arc<StreamRecord>>) -> Result<Self, String> {
        Ok(QuicSend {
            id: h3_id(stream.id())?,
            stream,
            pending: Vec::with_capacity(2),
            before_write: Vec::new(),
            record,
            done: false,
        })
    }
}

/// Split a frame into the chunks quinn will take, appended to `out`: the header bytes copied, the
/// payload as the `Bytes` announced to `record` when it is exactly that, else copied.
fn split_frame<B: Buf>(
    mut frame: WriteBuf<B>,
    record: Option<&StreamRecord>,
    out: &mut Vec<Bytes>,
) {
    let mut copied = 0u64;
    let mut shared = 0u64;
    while frame.has_remaining() {
        let rest = frame.chunk();
        let whole = rest.len() == frame.remaining();
        if let Some(payload) = whole.then(|| record?.take_offered(rest)).flatten() {
            shared += payload.len() as u64;
            frame.advance(payload.len());
            out.push(payload);
            break;
        }
        let n = rest.len();
        if n == 0 {
            break;
        }
        out.push(Bytes::copy_from_slice(rest));
        copied += n as u64;
        frame.advance(n);
    }
    if let Some(record) = record {
        record.update(|t| {
            t.copied_bytes += copied;
            t.zero_copy_bytes += shared;
        });
    }
}

impl<B: Buf> quic::SendStream<B> for QuicSend {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        while !self.pending.is_empty() {
            if self.record.is_some() {
                self.before_write.clear();
                self.before_write.extend(self.pending.iter().cloned());
            }
            let written = {
                let write = self.stream.write_chunks(&mut self.pending);
                let write = std::pin::pin!(write);
                ready!(write.poll(cx)).map_err(write_error)?
            };
            self.pending.drain(..written.chunks);
            if let Some(record) = &self.record {
                let now = Instant::now();
                let accepted = &self.before_write;
                record.update(|t| {
                    t.request_start.get_or_insert(now);
                    t.last_write_at = Some(now);
                    t.send_bytes_count += written.bytes as u64;
                    // The first `written.bytes` of the chunks as they were: what quinn took.
                    let mut left = written.bytes;
                    for chunk in accepted {
                        let k = left.min(chunk.len());
                        t.sent_frames.feed(&chunk[..k]);
                        left -= k;
                    }
                });
            }
        }
        self.before_write.clear();
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if !self.pending.is_empty() {
            // h3 calls this only after `poll_ready` reported everything written.
            return Err(StreamErrorIncoming::Unknown(
                "HTTP/3 glue: send_data before the previous frame was written".into(),
            ));
        }
        split_frame(data.into(), self.record.as_deref(), &mut self.pending);
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        let result = self
            .stream
            .finish()
            .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e)));
        self.done = true;
        if let (Ok(()), Some(record)) = (&result, &self.record) {
            let now = Instant::now();
            record.update(|t| t.request_end = Some(now));
            let watch = stamped_stop(self.stream.stopped(), record.ack_log.clone());
            *record.acked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::pin(watch));
        }
        Poll::Ready(result)
    }

    fn reset(&mut self, reset_code: u64) {
        self.done = true;
        let _ = self.stream.reset(varint(reset_code));
    }

    fn send_id(&self) -> StreamId {
        self.id
    }
}

impl Drop for QuicSend {
    fn drop(&mut self) {
        if !self.done {
            // quinn would finish the stream: a body cut short must not look complete.
            let _ = self.stream.reset(varint(H3_REQUEST_CANCELLED));
        }
    }
}

/// The receiving half of a stream.
pub(crate) struct QuicRecv {
    stream: Option<quinn::RecvStream>,
    id: StreamId,
    reading: Option<BoxFuture<ChunkRead>>,
    record: Option<Arc<StreamRecord>>,
    ended: bool,
}

impl QuicRecv {
    fn new(stream: quinn::RecvStream, record: Option<Arc<StreamRecord>>) -> Result<Self, String> {
        Ok(QuicRecv {
            id: h3_id(stream.id())?,
            stream: Some(stream),
            reading: None,
            record,
            ended: false,
        })
    }
}

impl quic::RecvStream for QuicRecv {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Self::Buf>, StreamErrorIncoming>> {
        if self.reading.is_none() {
            let Some(mut stream) = self.stream.take() else {
                return Poll::Ready(Ok(None));
            };
            self.reading = Some(Box::pin(async move {
                let chunk = stream.read_chunk(usize::MAX, true).await;
                (stream, chunk)
            }));
        }
        let Some(reading) = self.reading.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        let (stream, chunk) = ready!(reading.as_mut().poll(cx));
        self.reading = None;
        self.stream = Some(stream);
        let chunk = chunk.map_err(read_error)?.map(|c| c.bytes);
        if let Some(record) = &self.record {
            let now = Instant::now();
            match &chunk {
                Some(bytes) => record.update(|t| {
                    t.response_start.get_or_insert(now);
                    t.received_byted_count += bytes.len() as u64;
                    t.received_frames.feed(bytes);
                }),
                None if !self.ended => record.update(|t| t.response_end = Some(now)),
                None => {}
            }
        }
        if chunk.is_none() {
            self.ended = true;
        }
        Poll::Ready(Ok(chunk))
    }

    fn stop_sending(&mut self, error_code: u64) {
        if let Some(stream) = self.stream.as_mut() {
            let _ = stream.stop(varint(error_code));
        }
    }

    fn recv_id(&self) -> StreamId {
        self.id
    }
}

impl Drop for QuicRecv {
    fn drop(&mut self) {
        if !self.ended {
            if let Some(stream) = self.stream.as_mut() {
                let _ = stream.stop(varint(H3_REQUEST_CANCELLED));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use h3::proto::frame::Frame;

    fn split(frame: WriteBuf<Bytes>, record: &StreamRecord) -> Vec<Bytes> {
        let mut out = Vec::new();
        split_frame(frame, Some(record), &mut out);
        out
    }

    #[test]
    fn an_announced_payload_goes_to_quinn_as_the_same_buffer() {
        let record = StreamRecord::default();
        let payload = Bytes::from(vec![7u8; 100_000]);
        record.offer(&payload);
        let chunks = split(Frame::Data(payload.clone()).into(), &record);
        // The DATA frame header (type 0x00, varint length), copied; then the payload itself.
        assert_eq!(chunks.len(), 2);
        assert_eq!(&chunks[0][..], &[0x00, 0x80, 0x01, 0x86, 0xa0]);
        assert!(std::ptr::eq(chunks[1].as_ptr(), payload.as_ptr()));
        assert_eq!(chunks[1].len(), payload.len());
        let taps = record.taps();
        assert_eq!((taps.zero_copy_bytes, taps.copied_bytes), (100_000, 5));
        // Announcements are used once.
        assert!(record.offered.lock().unwrap().is_none());
    }

    #[test]
    fn anything_not_announced_is_copied_whole() {
        let record = StreamRecord::default();
        let announced = Bytes::from(vec![1u8; 10]);
        record.offer(&announced);
        // Same content, different buffer: copied, and the announcement stays for its frame.
        let other = Bytes::from(vec![1u8; 10]);
        let chunks = split(Frame::Data(other).into(), &record);
        let wire: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(wire, [&[0x00, 10][..], &[1u8; 10][..]].concat());
        assert_eq!(record.taps().zero_copy_bytes, 0);
        assert!(record.offered.lock().unwrap().is_some());
        // A slice of the announced buffer is not the announced payload either.
        let chunks = split(Frame::Data(announced.slice(2..)).into(), &record);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 2 + 8);
        assert_eq!(record.taps().zero_copy_bytes, 0);
    }

    #[test]
    fn frames_without_a_record_are_copied() {
        let mut out = Vec::new();
        split_frame(
            WriteBuf::from(Frame::Data(Bytes::from_static(b"abc"))),
            None,
            &mut out,
        );
        let wire: Vec<u8> = out.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(wire, b"\x00\x03abc");
    }
}
