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
//! Progress counts DATA payload the tap saw written (`progressBasis: "written"`): on a shared
//! connection the kernel's acknowledgement counters cannot be split by stream.

use std::future::poll_fn;
use std::time::Instant;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, SendStream};

use super::body_pieces::BodyPieces;
use super::exchange::ExchangeOutput;
use super::file_source::FileSource;
use super::StreamInput;
use crate::error::{ErrorKind, UploadError};
use crate::headers::ResponseHeaders;
use crate::profile::{BodyTransfer, ExchangeFacts, Timeline};
use crate::proto::multipart::BodyPlan;
use crate::proto::response::ResponseHead;
use crate::task::{HeadersReceived, TaskShared};
use crate::transport::h2_pool::{connection_failure, H2Connection};

/// A failed stream: retry on a fresh connection or not.
pub(crate) struct H2Failure {
    pub error: UploadError,
    /// The server refused the stream (REFUSED_STREAM) or sent GOAWAY before processing it:
    /// the request was not processed and may go again.
    pub retryable: bool,
}

pub(crate) async fn h2_exchange(
    conn: &H2Connection,
    send: SendRequest<Bytes>,
    input: StreamInput<'_>,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<ExchangeOutput, H2Failure> {
    let StreamInput {
        request,
        body,
        max_response_body,
        chunk_size,
        task,
        profile,
    } = input;
    let mut send = send;
    let end_with_headers = body.is_none();
    let (response, mut stream) = send
        .send_request(request, end_with_headers)
        .map_err(|e| h2_failure(e, false, "opening the stream", &conn.book))?;
    let id = stream.stream_id().as_u32();
    let book = conn.book.clone();
    let total_body = body.as_ref().map_or(0, |(plan, _)| plan.content_length());

    let mut response = std::pin::pin!(response);
    let mut sending = std::pin::pin!(async {
        match body {
            Some((plan, file)) => {
                send_body(&mut stream, plan, file, chunk_size, task, conn, id).await
            }
            None => Ok(BodyTransfer::default()),
        }
    });
    let mut body_done = end_with_headers;
    let head = loop {
        tokio::select! {
            biased;
            r = &mut response => break r.map_err(|e| h2_failure(e, false, "waiting for the response", &book))?,
            b = &mut sending, if !body_done => {
                facts.body = b.map_err(|e| match e {
                    SendError::H2(e) => h2_failure(e, false, "sending the body", &book),
                    SendError::Upload(e) => H2Failure { error: e, retryable: false },
                })?;
                body_done = true;
            }
        }
    };
    if !body_done {
        // The server answered before the whole body went out: the answer stands.
        facts.early_response = true;
    }
    let taps = book.stream(id);
    timeline.response_start = taps.last_headers_received_at.or(Some(Instant::now()));
    let (parts, mut recv) = head.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let status = parts.status.as_u16();
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > max_response_body as u64 {
            return Err(H2Failure {
                error: UploadError::new(
                    ErrorKind::ResponseTooLarge,
                    format!("Content-Length {len} exceeds the cap of {max_response_body} bytes"),
                ),
                retryable: false,
            });
        }
    }
    if profile {
        facts.rtt_ms = conn
            .tcp_fd
            .as_ref()
            .and_then(|fd| crate::sys::tcp_info(fd).ok())
            .filter(|i| i.rtt_us > 0)
            .map(|i| i.rtt_us as f64 / 1000.0);
    }
    task.emit_headers(&HeadersReceived {
        header: ResponseHeaders::new(headers.clone()),
        status_code: status,
    });

    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(|e| h2_failure(e, true, "reading the response body", &book))?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > max_response_body {
            return Err(H2Failure {
                error: UploadError::new(
                    ErrorKind::ResponseTooLarge,
                    format!("the body exceeds the cap of {max_response_body} bytes"),
                ),
                retryable: false,
            });
        }
        data.extend_from_slice(&chunk);
    }
    let now = Instant::now();
    let taps = book.stream(id);
    timeline.request_start = taps.headers_written_at;
    timeline.request_head_end = taps.headers_written_at;
    timeline.request_end = if body_done { taps.end_written_at } else { None };
    timeline.response_end = taps.end_received_at.or(Some(now));
    facts.sent_bytes = taps.bytes_written;
    facts.body_bytes_sent = taps.data_written;
    facts.received_bytes = taps.bytes_received;
    facts.response_body_bytes = data.len() as u64;
    if body_done && total_body > 0 {
        task.emit_progress(total_body, total_body);
    }
    book.forget(id);
    Ok(ExchangeOutput {
        head: ResponseHead {
            status,
            reason: String::new(),
            version: 2,
            headers,
        },
        body: data,
        reusable: true,
    })
}

enum SendError {
    H2(h2::Error),
    Upload(UploadError),
}

/// Stream the multipart body as DATA frames, following the flow-control windows.
async fn send_body(
    stream: &mut SendStream<Bytes>,
    plan: &BodyPlan,
    file: &FileSource,
    chunk_size: usize,
    task: &TaskShared,
    conn: &H2Connection,
    id: u32,
) -> Result<BodyTransfer, SendError> {
    let total = plan.content_length();
    // Positional reads from offset 0 (a retry sends the whole body again); each chunk is handed
    // to h2 as one `Bytes`, without a further copy.
    let mut pieces = BodyPieces::new(plan, file, chunk_size);
    while let Some((piece, last)) = pieces.next().await.map_err(SendError::Upload)? {
        send_piece(stream, piece, last, task, conn, id, total).await?;
    }
    Ok(pieces.transfer)
}

async fn send_piece(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    last: bool,
    task: &TaskShared,
    conn: &H2Connection,
    id: u32,
    total: u64,
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
        let written = conn.book.stream(id).data_written;
        if written > 0 {
            task.emit_progress(written.min(total), total);
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
fn h2_failure(
    e: h2::Error,
    response_seen: bool,
    doing: &str,
    book: &crate::transport::frame_tap::TapBook,
) -> H2Failure {
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
    H2Failure {
        error: UploadError::new(kind, detail),
        retryable,
    }
}
