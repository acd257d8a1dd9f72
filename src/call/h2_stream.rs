//! One upload as an HTTP/2 stream.
//!
//! The body goes out as DATA frames from large `Bytes` (the preamble, file chunks read straight
//! into a buffer that is then frozen and split without copying, the epilogue), following the
//! server's flow control with h2's reserve / poll-capacity loop. The response is awaited at the
//! same time: a final response before the body ends is the result (an early response), as over
//! HTTP/1.1.
//!
//! Timing comes from the connection's [`FrameTap`](crate::transport::frame_tap), which sees the
//! frames the `h2` connection task writes and reads:
//!
//! - `requestStart`: the write that carried the first byte of the stream's HEADERS frame;
//! - `requestEnd`: the write that carried the last byte of its END_STREAM frame;
//! - `responseStart`: the read that carried the first byte of the final response's HEADERS;
//! - `responseEnd`: the read that carried the last byte of the response's END_STREAM frame;
//! - `sendBytesCount` / `receivedBytedCount`: the stream's frames, 9-byte headers included.
//!
//! What the peer acknowledged is per stream too, although streams share one TCP connection:
//! the tap places each tracked stream's body bytes at offsets of the connection's TCP byte
//! stream and makes the write that ends the request a send the kernel stamps
//! (`transport::frame_tap`), and this driver polls the kernel's counters
//! (`transport::ack_counters`) while the body goes out (every [`ACK_POLL_WHILE_SENDING`]) and
//! then until the last byte is acknowledged (every [`ACK_POLL_AFTER_WRITES`]):
//!
//! - progress counts the stream's body bytes the peer acknowledged (`progressBasis:
//!   "acknowledged"`);
//! - `bodyAckedEnd` is the kernel's stamp of the acknowledgement of the stream's last body byte
//!   (`ackSource: "kernel"`), or the first poll that saw it acknowledged (`"poll"`).
//!
//! Where the kernel cannot tell (not Linux), or the upload wants no profile, progress counts
//! DATA payload the tap saw written (`progressBasis: "written"`), as before.

use std::future::poll_fn;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, SendStream};

use super::body_pieces::BodyPieces;
use super::file_source::FileSource;
use super::multiplexed::StreamInput;
use super::outcome::{Failure, Response};
use super::stream_response::{receive_response, ResponseBody};
use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::measure::{AckSource, BodyTransfer, ExchangeReport, StreamStamps};
use crate::proto::multipart::BodyPlan;
use crate::transport::ack_counters::AckCounters;
use crate::transport::frame_tap::TapBook;
use crate::transport::h2_conn::{connection_failure, H2Connection, StreamSlot};

/// How often the acknowledgement counters are read while the body goes out (progress events).
const ACK_POLL_WHILE_SENDING: Duration = Duration::from_millis(20);
/// How often they are read once the body is written, until its last byte is acknowledged.
const ACK_POLL_AFTER_WRITES: Duration = Duration::from_millis(1);

/// A stream slot on an HTTP/2 connection: the handle to open the stream, the slot under the
/// server's `SETTINGS_MAX_CONCURRENT_STREAMS` (freed when dropped), and when it was granted.
pub(crate) struct H2Stream {
    pub send: SendRequest<Bytes>,
    pub slot: StreamSlot,
    pub ready_at: Instant,
}

/// The request as a stream on `conn`, in the stream slot `stream`.
pub(crate) async fn exchange(
    conn: &H2Connection,
    stream: H2Stream,
    input: StreamInput<'_>,
) -> Result<Response, Failure> {
    let StreamInput {
        request,
        body,
        max_response_body,
        chunk_size,
        task,
        profile,
        track_acks,
    } = input;
    let H2Stream {
        mut send,
        slot: _slot,
        ready_at,
    } = stream;
    let mut report = ExchangeReport {
        stream_ready_at: Some(ready_at),
        ..ExchangeReport::default()
    };
    let end_with_headers = body.is_none();
    let (response, mut stream) = send
        .send_request(request, end_with_headers)
        .map_err(|e| h2_failure(e, false, "opening the stream", &conn.book))?;
    let id = stream.stream_id().as_u32();
    let book = conn.book.clone();
    let total_body = body.as_ref().map_or(0, |(plan, _)| plan.content_length());
    // Acknowledged progress and `bodyAckedEnd` (profile work): tracked before any DATA goes.
    let acks = conn.acks.as_ref().filter(|_| track_acks && body.is_some());
    if acks.is_some() {
        book.track_acks(id);
    }

    let mut response = std::pin::pin!(response);
    let mut sending = std::pin::pin!(async {
        match body {
            Some((plan, file)) => {
                let written_progress = acks.is_none();
                send_body(
                    &mut stream,
                    plan,
                    file,
                    chunk_size,
                    task,
                    conn,
                    id,
                    written_progress,
                )
                .await
            }
            None => Ok(BodyTransfer::default()),
        }
    });
    let mut body_done = end_with_headers;
    let mut acked_end = false;
    let head = loop {
        let ack_poll = match acks {
            Some(_) if !body_done => Some(ACK_POLL_WHILE_SENDING),
            Some(_) if !acked_end => Some(ACK_POLL_AFTER_WRITES),
            _ => None,
        };
        tokio::select! {
            biased;
            r = &mut response => break r.map_err(|e| h2_failure(e, false, "waiting for the response", &book))?,
            b = &mut sending, if !body_done => {
                report.body = b.map_err(|e| match e {
                    SendError::H2(e) => h2_failure(e, false, "sending the body", &book),
                    SendError::Upload(e) => Failure::fatal(e),
                })?;
                body_done = true;
            }
            _ = tokio::time::sleep(ack_poll.unwrap_or_default()), if ack_poll.is_some() => {
                if let Some(acks) = acks {
                    acked_end = poll_acks(acks, &book, id, task, total_body);
                }
            }
        }
    };

    // The server answered before the whole body went out: the answer stands.
    report.early_response = !body_done;
    let response_start = book.stream(id).response_start;
    // Was the last body byte already acknowledged when the head had arrived? Then it was by
    // `responseStart`: a server that answers after reading the whole body acknowledges it in
    // the response's own segments at the latest (used to bound a polled end, below).
    let acked_by_head = acks.is_some_and(|a| {
        poll_acks(a, &book, id, task, total_body);
        book.acked(id).end.is_some()
    });
    let (parts, recv) = head.into_parts();
    let rtt = || {
        // The head's poll read `TCP_INFO` just now: its RTT, without asking again (issue 15).
        acks.and_then(|a| a.rtt_ms()).or_else(|| {
            conn.tcp_fd
                .as_ref()
                .and_then(|fd| crate::sys::tcp_info(fd).ok())
                .filter(|i| i.rtt_us > 0)
                .map(|i| i.rtt_us as f64 / 1000.0)
        })
    };
    let mut body = H2Body { recv, book: &book };
    let received = receive_response(
        &parts,
        2,
        &mut body,
        max_response_body,
        task,
        profile.then_some(rtt),
    )
    .await?;
    let now = Instant::now();
    // The response's segments carried the peer's acknowledgement of everything it read: one
    // more look finds the stamp of the last body byte if the polls did not.
    if let Some(acks) = acks {
        if !book.acked(id).end.is_some_and(|end| end.exact) {
            poll_acks(acks, &book, id, task, total_body);
        }
        let acked = book.acked(id);
        if let Some(end) = acked.end {
            // A polled end is the poll's time, an upper bound; one seen by the time the head
            // arrived is bounded by `responseStart` too (see `acked_by_head`).
            let at = match response_start {
                Some(head) if !end.exact && acked_by_head => end.at.min(head),
                _ => end.at,
            };
            report.stamps.body_acked_end = Some(at); // bodyAckedEnd
            report.ack_source = Some(if end.exact {
                AckSource::Kernel
            } else {
                AckSource::Poll
            });
        }
        report.progress_acknowledged = true;
    }
    // The final head's start as it was when the head arrived (a trailer block without a body
    // would move the tap's later).
    let taps = StreamStamps {
        response_start,
        ..book.stamps(id)
    };
    if body_done && total_body > 0 {
        task.emit_progress(total_body, total_body);
    }
    book.forget(id);
    Ok(received.into_response(report, taps, body_done, now))
}

/// Read the connection's acknowledgement counters, and report stream `id`'s acknowledged body
/// bytes as progress. Returns whether its last body byte has been acknowledged.
fn poll_acks(acks: &AckCounters, book: &TapBook, id: u32, task: &TaskShared, total: u64) -> bool {
    acks.poll(book);
    let acked = book.acked(id);
    if acked.body > 0 {
        task.emit_progress(acked.body.min(total), total);
    }
    acked.end.is_some()
}

/// The response body as h2 delivers it, releasing flow-control capacity as it is read.
struct H2Body<'a> {
    recv: h2::RecvStream,
    book: &'a TapBook,
}

impl ResponseBody for H2Body<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        match self.recv.data().await {
            None => Ok(None),
            Some(Ok(chunk)) => {
                let _ = self.recv.flow_control().release_capacity(chunk.len());
                Ok(Some(chunk))
            }
            Some(Err(e)) => Err(h2_failure(e, true, "reading the response body", self.book)),
        }
    }
}

enum SendError {
    H2(h2::Error),
    Upload(UploadError),
}

/// Stream the multipart body as DATA frames, following the flow-control windows; with
/// `written_progress`, report progress as the tap sees DATA written.
#[allow(clippy::too_many_arguments)]
async fn send_body(
    stream: &mut SendStream<Bytes>,
    plan: &BodyPlan,
    file: &FileSource,
    chunk_size: usize,
    task: &TaskShared,
    conn: &H2Connection,
    id: u32,
    written_progress: bool,
) -> Result<BodyTransfer, SendError> {
    let total = plan.content_length();
    // Positional reads from offset 0 (a retry sends the whole body again); each chunk is handed
    // to h2 as one `Bytes`, without a further copy.
    let mut pieces = BodyPieces::new(plan, file, chunk_size);
    while let Some((piece, last)) = pieces.next().await.map_err(SendError::Upload)? {
        send_piece(stream, piece, last, task, conn, id, total, written_progress).await?;
    }
    Ok(pieces.transfer)
}

#[allow(clippy::too_many_arguments)]
async fn send_piece(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    last: bool,
    task: &TaskShared,
    conn: &H2Connection,
    id: u32,
    total: u64,
    written_progress: bool,
) -> Result<(), SendError> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let wait = WindowWait::start(conn);
        let granted = poll_fn(|cx| stream.poll_capacity(cx)).await;
        wait.ended();
        let granted = match granted {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(SendError::H2(e)),
            None => {
                return Err(SendError::Upload(UploadError::new(
                    ErrorKind::ConnectionClosed,
                    "the stream closed while sending the body",
                )))
            }
        };
        if granted == 0 {
            // No capacity right now (h2 reports a zero grant, e.g. while the stream is being
            // reset): let the connection task run, and stop if the peer reset the stream.
            tokio::task::yield_now().await;
            let reset = poll_fn(|cx| match stream.poll_reset(cx) {
                std::task::Poll::Pending => std::task::Poll::Ready(None),
                std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
            })
            .await;
            match reset {
                None => continue,
                Some(Ok(reason)) => {
                    return Err(SendError::Upload(UploadError::new(
                        ErrorKind::StreamReset,
                        format!(
                            "the server reset the stream with {reason:?} while sending the body"
                        ),
                    )))
                }
                Some(Err(e)) => return Err(SendError::H2(e)),
            }
        }
        let chunk = data.split_to(granted.min(data.len()));
        stream
            .send_data(chunk, last && data.is_empty())
            .map_err(SendError::H2)?;
        if written_progress {
            let written = conn.book.stream(id).body_bytes_sent;
            if written > 0 {
                task.emit_progress(written.min(total), total);
            }
        }
    }
    Ok(())
}

/// How long a stream may wait for flow-control window before the connection is suspected of
/// never opening it.
const STARVED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A wait for flow-control window. If the upload ends during the wait (its timeout fired, or it
/// was aborted: the future is dropped) after the window had not moved for [`STARVED_AFTER`],
/// the connection is retired: a server that never opens its window (`SETTINGS_INITIAL_WINDOW_
/// SIZE` 0, no `WINDOW_UPDATE`) would otherwise starve every later upload to that origin too.
/// Streams already on it go on; new uploads get a fresh connection.
struct WindowWait<'a> {
    conn: &'a H2Connection,
    since: Instant,
    armed: bool,
}

impl<'a> WindowWait<'a> {
    fn start(conn: &'a H2Connection) -> Self {
        WindowWait {
            conn,
            since: Instant::now(),
            armed: true,
        }
    }

    /// The wait ended normally (window granted, or the stream failed): nothing to judge.
    fn ended(mut self) {
        self.armed = false;
    }
}

impl Drop for WindowWait<'_> {
    fn drop(&mut self) {
        let waited = self.since.elapsed();
        if self.armed && waited >= STARVED_AFTER {
            self.conn.retire(format!(
                "an upload on it waited {:.1} s for flow-control window that never opened",
                waited.as_secs_f64()
            ));
        }
    }
}

/// Map an h2 error to the upload's error, and say whether the request may go again.
///
/// A reset by the server is `stream reset` whatever its code (REFUSED_STREAM included: it is
/// retried once, but a second refusal, or one after the response began, is the failure), and
/// the detail names the code. A GOAWAY that left the stream unprocessed, and a refusal before
/// any response, may go again. A connection-level failure after a GOAWAY says so, with the
/// GOAWAY's code and last-stream-id (from the connection's frame tap).
fn h2_failure(e: h2::Error, response_seen: bool, doing: &str, book: &TapBook) -> Failure {
    let reason = e.reason();
    let refused = reason == Some(Reason::REFUSED_STREAM);
    let reset = e.is_reset() && e.is_remote();
    let goaway = e.is_go_away() && e.is_remote();
    let retryable = !response_seen && ((reset && refused) || goaway);
    let kind = if e.is_io() {
        ErrorKind::ConnectionClosed
    } else if reset {
        ErrorKind::StreamReset
    } else if goaway {
        ErrorKind::ConnectionClosed
    } else {
        ErrorKind::Network
    };
    // A connection-level failure reads the same on every stream it ends; a stream's own failure
    // says what the stream was doing.
    let detail = match reason {
        _ if e.is_io() || e.is_go_away() => connection_failure(book, &e),
        Some(code) if reset => format!("the server reset the stream with {code:?} while {doing}"),
        _ => format!("{doing}: {e}"),
    };
    Failure {
        error: UploadError::new(kind, detail),
        retryable,
    }
}
