//! One HTTP/1.1 exchange on a connection: write the request while watching for the response.
//!
//! The driver writes the head, the multipart preamble, the file (streamed in large chunks, never
//! whole in memory) and the epilogue, and reads at the same time: a server may answer early (a
//! 413 before it has read the body), and that answer is the result, not the broken pipe that
//! follows it. The sans-IO [`ResponseDecoder`] turns the bytes read into events; this driver
//! takes the timestamps around the reads and writes that carry them:
//!
//! - `requestStart`: just before the write that carries the first byte of the head;
//! - `requestEnd`: when the flush after the write carrying the last body byte returns (the bytes
//!   are in the kernel / TLS layer; what the peer acknowledged is a later extension);
//! - `responseStart`: when the read returned that carried the first byte of the *final*
//!   response (after any 1xx interim responses);
//! - `responseEnd`: when the read returned that completed the response, or that saw EOF for a
//!   close-delimited body.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::acks::AckTracker;
use super::file_source::FileSource;
use crate::error::{ErrorKind, UploadError};
use crate::headers::ResponseHeaders;
use crate::profile::{ExchangeFacts, Timeline};
use crate::proto::multipart::BodyPlan;
use crate::proto::response::{BodyFraming, ResponseDecoder, ResponseEvent, ResponseHead};
use crate::task::{HeadersReceived, TaskShared};
use crate::transport::stream::Stream;

mod request_writer;
mod wire;

use request_writer::{Body, RequestWriter, Stage, Step};

/// What the exchange needs besides the connection.
pub(crate) struct ExchangeInput<'a> {
    pub head: &'a Bytes,
    /// The multipart body and the file it streams; `None` for a body-less request (the GET a
    /// 303 turns the upload into).
    pub body: Option<(&'a BodyPlan, &'a FileSource)>,
    /// `Some(wait)` when the head carries `Expect: 100-continue`.
    pub expect_continue: Option<Duration>,
    pub max_response_body: usize,
    pub chunk_size: usize,
    /// Send the file with `sendfile(2)` where the connection allows (plain TCP).
    pub zero_copy: bool,
    /// rustls' outgoing plaintext limit, when not its default.
    pub tls_buffer_limit: Option<usize>,
    pub task: &'a TaskShared,
    /// Track what the peer acknowledged (progress, `bodyAckedEnd`, `rtt`): profile work.
    pub track_acks: bool,
}

/// A complete response.
pub(crate) struct ExchangeOutput {
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// The connection may carry another request.
    pub reusable: bool,
}

/// A failed exchange, with what the caller needs to decide on a retry.
pub(crate) struct ExchangeFailure {
    pub error: UploadError,
    /// Some byte of a response had arrived.
    pub response_seen: bool,
}

/// How often the acknowledgement counters are read while waiting for the last acks.
const ACK_POLL_AFTER_WRITES: Duration = Duration::from_millis(1);
/// How often they are read, between writes, while the body is being sent (progress events).
const ACK_POLL_WHILE_SENDING: Duration = Duration::from_millis(20);

pub(crate) async fn exchange(
    stream: &mut Stream,
    input: ExchangeInput<'_>,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<ExchangeOutput, ExchangeFailure> {
    let fail = |error: UploadError, response_seen: bool| ExchangeFailure {
        error,
        response_seen,
    };
    let plan = input.body.map(|(plan, _)| plan);
    let total_body = plan.map_or(0, |p| p.content_length());
    let is_tls = matches!(stream, Stream::Tls(_));
    // A reused connection whose last exchange's ack timestamps left tokio's readiness stuck
    // at "write closed" (transport::stream's module docs) gets a fresh registration; a
    // failure here means the socket is unusable, which the first write reports.
    let _ = stream.renew_stale_registration();
    if let (Stream::Tls(tls), Some(limit)) = (&mut *stream, input.tls_buffer_limit) {
        tls.get_mut().1.set_buffer_limit(Some(limit));
    }
    let mut acks = if input.track_acks {
        AckTracker::new(stream)
    } else {
        None
    };
    let body = input.body.map(|(plan, file)| Body {
        preamble: plan.preamble(),
        epilogue: plan.epilogue(),
        file,
        file_len: plan.file_len(),
    });
    let mut writer = RequestWriter::new(
        input.head,
        body,
        input.expect_continue,
        input.chunk_size,
        input.zero_copy,
    );
    let (mut rd, mut wr) = wire::split(stream);
    let mut decoder = ResponseDecoder::new(false);
    let mut read_buf = vec![0u8; 64 * 1024];

    let mut head_written = 0u64;
    let mut body_sent = 0u64;
    let mut write_error: Option<std::io::Error> = None;
    // When the last write returned (the request's end if the response overtakes the flush).
    let mut last_write_at: Option<Instant> = None;
    let mut final_armed = false;

    let mut response: Option<ResponseHead> = None;
    let mut body: Vec<u8> = Vec::new();
    let mut complete = false;
    let mut eof = false;
    // Instant of the read that carried the first byte of the response being parsed now.
    let mut pending_start: Option<Instant> = None;
    facts.expect_continue = input.expect_continue.is_some();

    loop {
        if complete {
            if writer.stage() == Stage::Flush && write_error.is_none() {
                // Every byte was written and the response overtook the final flush (on plain
                // TCP a formality): finish it, this is not an early response.
                // The server answered, so it had every byte: the request ended when the write
                // carrying its last byte returned, before this late flush.
                match wr.flush().await {
                    Ok(()) => {
                        writer.finish();
                        request_written(
                            last_write_at.unwrap_or_else(Instant::now),
                            (!is_tls).then_some(head_written + body_sent),
                            timeline,
                            acks.as_mut(),
                            body_sent,
                            total_body,
                            input.task,
                        );
                    }
                    Err(e) => write_error = Some(e),
                }
            }
            if !matches!(writer.stage(), Stage::Done | Stage::Stopped) {
                // The server answered before it had the whole request: the answer stands, the
                // connection cannot carry another request.
                facts.early_response = true;
                writer.stop();
            }
            break;
        }
        if eof {
            // push_eof made the decoder either finish a close-delimited body (complete) or fail.
            return Err(fail(
                UploadError::new(
                    ErrorKind::ConnectionClosed,
                    match &write_error {
                        Some(e) => format!("while sending the request: {e}"),
                        None => "before the response was complete".into(),
                    },
                ),
                decoder.wire_bytes() > 0,
            ));
        }
        let stage = writer.stage();
        let writing = writer.wants_io() && write_error.is_none();
        if writing && !final_armed && writer.last_write_ready() {
            // Stamp the acknowledgement of the write that will carry the last body byte.
            final_armed = true;
            if let Some(acks) = acks.as_mut() {
                acks.before_final_write();
            }
        }
        // Poll the acknowledgement counters on a timer too: writes complete only when the
        // socket has room, and progress must grow with the network in between. After the last
        // write, poll faster to catch the moment everything is acknowledged.
        let ack_poll = match &acks {
            Some(a) if stage == Stage::Done && !a.all_acked() => Some(ACK_POLL_AFTER_WRITES),
            Some(_) if writer.in_body() => Some(ACK_POLL_WHILE_SENDING),
            _ => None,
        };
        let continue_deadline = match stage {
            Stage::AwaitContinue(deadline) => Some(deadline),
            _ => None,
        };
        let before_write = Instant::now();

        tokio::select! {
            biased;
            r = rd.read(&mut read_buf) => {
                let now = Instant::now();
                match r {
                    Ok(0) => {
                        eof = true;
                        decoder.push_eof();
                    }
                    Ok(n) => {
                        pending_start.get_or_insert(now);
                        decoder.push(&read_buf[..n]);
                    }
                    Err(e) if is_tls && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        // The TCP connection ended without TLS close_notify (a server that
                        // died or dropped the connection): an end like any other, judged by
                        // the framing as curl and browsers do, so the reason says what was
                        // missing rather than what TLS thinks of it.
                        eof = true;
                        decoder.push_eof();
                    }
                    Err(e) => {
                        let seen = decoder.wire_bytes() > 0 || pending_start.is_some();
                        let error = UploadError::from_io(&e, "reading the response");
                        return Err(fail(note_unsent(error, body_sent, total_body), seen));
                    }
                }
                loop {
                    let event = decoder.poll_event().map_err(|e| {
                        let kind = if eof { ErrorKind::ConnectionClosed } else { ErrorKind::InvalidResponse };
                        // A close before any response byte is what a stale pooled connection
                        // looks like: the caller may retry it on a fresh connection.
                        let seen = decoder.wire_bytes() > 0 || pending_start.is_some();
                        let error = UploadError::new(kind, e.to_string());
                        fail(note_unsent(error, body_sent, total_body), seen)
                    })?;
                    match event {
                        None => break,
                        Some(ResponseEvent::Interim(head)) => {
                            if timeline.first_interim.is_none() {
                                timeline.first_interim = pending_start.or(Some(now));
                                facts.first_interim_status = head.status;
                            }
                            if head.status == 100 {
                                writer.start_body();
                            }
                            pending_start = (decoder.buffered_len() > 0).then_some(now);
                        }
                        Some(ResponseEvent::Head(head)) => {
                            timeline.response_start = pending_start.or(Some(now));
                            if let Some(acks) = acks.as_mut() {
                                facts.rtt_ms = acks.rtt_ms();
                                acks.report(input.task, total_body);
                            }
                            if let Some(BodyFraming::Length(n)) = decoder.body_framing() {
                                if n > input.max_response_body as u64 {
                                    return Err(fail(too_large(input.max_response_body, Some(n)), true));
                                }
                            }
                            input.task.emit_headers(&HeadersReceived {
                                header: ResponseHeaders::new(head.headers.clone()),
                                status_code: head.status,
                            });
                            response = Some(head);
                        }
                        Some(ResponseEvent::Body(bytes)) => {
                            if body.len() + bytes.len() > input.max_response_body {
                                return Err(fail(too_large(input.max_response_body, None), true));
                            }
                            body.extend_from_slice(&bytes);
                        }
                        Some(ResponseEvent::End) => {
                            timeline.response_end = Some(now);
                            complete = true;
                            break;
                        }
                    }
                }
            }
            step = writer.step(&mut wr), if writing => {
                let now = Instant::now();
                match step {
                    Step::ChunkFlushed => {
                        if let Some(acks) = acks.as_mut() {
                            acks.mark(body_sent);
                            acks.report(input.task, total_body);
                        }
                    }
                    Step::ReadToEnd => {}
                    Step::Finished => {
                        request_written(now, (!is_tls).then_some(head_written + body_sent), timeline, acks.as_mut(), body_sent, total_body, input.task);
                    }
                    // Keep reading: the server may have answered before closing.
                    Step::WriteFailed(e) => write_error = Some(e),
                    Step::FileFailed(e) => {
                        return Err(fail(e, decoder.wire_bytes() > 0));
                    }
                    Step::Wrote { head, body: body_n, head_done } => {
                        last_write_at = Some(now);
                        if head > 0 && head_written == 0 {
                            timeline.request_start = Some(before_write);
                        }
                        head_written += head as u64;
                        body_sent += body_n as u64;
                        if head_done {
                            timeline.request_head_end = Some(now);
                        }
                        match acks.as_mut() {
                            Some(acks) if !is_tls => {
                                // Plain TCP: socket bytes are ours, counted exactly.
                                if head_done {
                                    // Body byte 0 starts here: interpolation needs a first mark.
                                    acks.mark_written(head_written, 0);
                                }
                                if writer.in_body() {
                                    acks.mark_written(head_written + body_sent, body_sent);
                                    acks.report(input.task, total_body);
                                }
                            }
                            Some(acks) => {
                                if head_done && body_n == 0 {
                                    acks.mark(0);
                                }
                                // TLS: mark once the records are flushed into the socket.
                                if writer.in_body() {
                                    writer.flush_before_next = true;
                                }
                            }
                            None if body_sent > 0 => input.task.emit_progress(body_sent, total_body),
                            None => {}
                        }
                    }
                }
            }
            _ = tokio::time::sleep(ack_poll.unwrap_or_default()), if ack_poll.is_some() => {
                if let Some(acks) = acks.as_mut() {
                    acks.report(input.task, total_body);
                }
            }
            _ = tokio::time::sleep_until(continue_deadline.unwrap_or_else(tokio::time::Instant::now)), if continue_deadline.is_some() => {
                // No 100 Continue in time: send the body anyway, as curl and browsers do.
                writer.start_body();
            }
        }
    }

    if let Some(acks) = acks.as_mut() {
        acks.poll();
        if let Some((at, source)) = acks.acked_end() {
            timeline.body_acked_end = Some(at);
            facts.ack_source = Some(source);
        }
        facts.progress_acknowledged = true;
    }
    let finished = writer.stage() == Stage::Done;
    if finished && total_body > 0 {
        // The server answered after the whole body: the progress ends at exactly 100 %.
        input.task.emit_progress(total_body, total_body);
    }
    facts.sent_bytes = head_written + body_sent;
    facts.body_bytes_sent = body_sent;
    facts.received_bytes = decoder.wire_bytes();
    facts.response_body_bytes = body.len() as u64;
    facts.body = writer.transfer.clone();
    let head = response.ok_or_else(|| {
        fail(
            UploadError::new(ErrorKind::InvalidResponse, "response ended without a head"),
            true,
        )
    })?;
    let reusable = finished && write_error.is_none() && decoder.keep_alive();
    Ok(ExchangeOutput {
        head,
        body,
        reusable,
    })
}

/// The last byte of the request is written and flushed: `requestEnd`, and the last mark for
/// acknowledged progress.
fn request_written(
    now: Instant,
    socket_written: Option<u64>,
    timeline: &mut Timeline,
    acks: Option<&mut AckTracker>,
    body_sent: u64,
    total_body: u64,
    task: &TaskShared,
) {
    timeline.request_end = Some(now);
    if let Some(acks) = acks {
        acks.finished_writing(body_sent, socket_written);
        acks.report(task, total_body);
    }
}

/// A connection that failed before the request body was all written says how far the body
/// got: a server that refused the upload early (a size limit) and closed is then told apart
/// from one that read it all and failed to answer.
fn note_unsent(error: UploadError, body_sent: u64, total_body: u64) -> UploadError {
    let connection_failed = matches!(
        error.kind(),
        ErrorKind::ConnectionClosed | ErrorKind::Network
    );
    if !connection_failed || body_sent >= total_body {
        return error;
    }
    UploadError::new(
        error.kind(),
        format!(
            "{}; {body_sent} of {total_body} request body bytes had been written",
            error.detail()
        ),
    )
}

fn too_large(cap: usize, announced: Option<u64>) -> UploadError {
    UploadError::new(
        ErrorKind::ResponseTooLarge,
        match announced {
            Some(n) => format!("Content-Length {n} exceeds the cap of {cap} bytes"),
            None => format!("the body exceeds the cap of {cap} bytes"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_failure_mid_body_says_how_far_the_body_got() {
        let closed = UploadError::new(ErrorKind::ConnectionClosed, "connection closed");
        assert_eq!(
            note_unsent(closed.clone(), 10, 100).err_msg(),
            "uploadFile:fail connection closed: connection closed; \
             10 of 100 request body bytes had been written"
        );
        // The whole body went out, or there is none: nothing to add.
        assert_eq!(note_unsent(closed.clone(), 100, 100), closed);
        assert_eq!(note_unsent(closed.clone(), 0, 0), closed);
        // Not a connection failure: the detail stays as it is.
        let invalid = UploadError::new(ErrorKind::InvalidResponse, "bad chunk");
        assert_eq!(note_unsent(invalid.clone(), 10, 100), invalid);
    }
}
