//! The driver of one HTTP/1.1 exchange on a connection: it writes the request while reading the
//! response, feeds both to the sans-IO [`Http1Exchange`] and takes the stamps.
//!
//! What may be written next, what a response byte means and which instants are the profile's
//! are the state machine's decisions (see `proto::h1_exchange`). This driver does the I/O around
//! it and the work that needs the socket:
//!
//! - the request's bytes, by the best path ([`RequestWriter`]: `sendfile` on plain TCP, gathered
//!   writes, positional file reads that never stall the runtime);
//! - the instant of each read and write, passed to the machine (`requestStart` is taken just
//!   before the write that carries the head's first byte, every other instant when the call
//!   that moved the bytes returned);
//! - what the peer acknowledged (`acks`: progress in acknowledged bytes, `bodyAckedEnd`, `rtt`),
//!   which needs the TCP socket;
//! - the events to the task's listeners (progress, headers received).
//!
//! A server may answer early (a 413 before it has read the body): that answer is the result,
//! not the broken pipe that follows it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::acks::AckTracker;
use super::file_source::FileSource;
use super::outcome::{Failure, Response};
use crate::error::{ErrorKind, UploadError};
use crate::events::{HeadersReceived, TaskShared};
use crate::headers::ResponseHeaders;
use crate::measure::{ExchangeReport, ExchangeStamps};
use crate::proto::h1_exchange::{
    ExchangeError, ExchangeFailure, Http1Exchange, Received, RequestSpec, SendState,
};
use crate::proto::multipart::BodyPlan;
use crate::transport::stream::Stream;

mod request_writer;
mod wire;

use request_writer::{Body, RequestWriter, Step};

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

/// Requests larger than this (head and body) renew a stale reactor registration before they
/// are written; the kernel's smallest default send buffer (`tcp_wmem`'s middle value) holds a
/// smaller one whole.
const RENEW_REGISTRATION_ABOVE: u64 = 16 * 1024;

/// How often the acknowledgement counters are read while waiting for the last acks.
const ACK_POLL_AFTER_WRITES: Duration = Duration::from_millis(1);
/// How often they are read, between writes, while the body is being sent (progress events).
const ACK_POLL_WHILE_SENDING: Duration = Duration::from_millis(20);

/// The read buffer's size: a TLS record's plaintext and more, in one read.
const READ_BUFFER: usize = 64 * 1024;

/// Run one exchange on `stream`, reading into `read_buf` (the connection's, sized here on its
/// first exchange).
pub(crate) async fn exchange(
    stream: &mut Stream,
    read_buf: &mut Vec<u8>,
    input: ExchangeInput<'_>,
) -> Result<Response, Failure> {
    let plan = input.body.map(|(plan, _)| plan);
    let total_body = plan.map_or(0, |p| p.content_length());
    let is_tls = !stream.is_plain();
    // A reused connection whose last exchange's ack timestamps left tokio's readiness stuck
    // at "write closed" (transport::stream's module docs) gets a fresh registration; a
    // failure here means the socket is unusable, which the first write reports. Only a request
    // that may have to wait for room in the send buffer needs it: a small one is written at
    // once (and a write that did find the buffer full would still end, after a short pause:
    // `wire.rs`), so it saves the five system calls of a renewal (issue 15).
    if input.head.len() as u64 + total_body > RENEW_REGISTRATION_ABOVE {
        let _ = stream.renew_stale_registration();
    }
    if let Some(limit) = input.tls_buffer_limit {
        stream.set_tls_buffer_limit(limit);
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
        input.expect_continue.is_some(),
        input.chunk_size,
        input.zero_copy,
    );
    let mut ex = Http1Exchange::new(
        RequestSpec {
            head_len: input.head.len() as u64,
            body_len: plan.map(|p| p.content_length()),
            expect_continue: input.expect_continue,
        },
        input.max_response_body,
    );
    let (mut rd, mut wr) = wire::split(stream);
    if read_buf.len() < READ_BUFFER {
        read_buf.resize(READ_BUFFER, 0);
    }
    let mut final_armed = false;
    let mut report = ExchangeReport {
        expect_continue: input.expect_continue.is_some(),
        ..ExchangeReport::default()
    };
    // Head bytes written: with the body bytes, the socket bytes of this exchange (plain TCP
    // marks acknowledged progress by them).
    let mut head_written = 0u64;

    loop {
        if ex.is_complete() {
            if ex.wants_late_flush() {
                // Every byte was written and the response overtook the final flush (on plain
                // TCP a formality): finish it, this is not an early response.
                match wr.flush().await {
                    Ok(()) => {
                        ex.on_late_flush(Instant::now());
                        let socket = (!is_tls).then_some(head_written + ex.body_sent());
                        request_written(socket, acks.as_mut(), &ex, total_body, input.task);
                    }
                    Err(e) => ex.on_late_flush_failed(e),
                }
            }
            break;
        }
        if let Some(failure) = ex.failure_at_close() {
            return Err(to_failure(failure));
        }
        let writing = ex.may_write();
        if writing && !final_armed && writer.last_write_ready() {
            // Stamp the acknowledgement of the write that will carry the last body byte.
            final_armed = true;
            if let Some(acks) = acks.as_mut() {
                if acks.before_final_write() {
                    wr.stamp_writes();
                }
            }
        }
        // Poll the acknowledgement counters on a timer too: writes complete only when the
        // socket has room, and progress must grow with the network in between. After the last
        // write, poll faster to catch the moment everything is acknowledged.
        let ack_poll = match &acks {
            Some(a) if ex.send_state() == SendState::Done && !a.all_acked() => {
                Some(ACK_POLL_AFTER_WRITES)
            }
            Some(_) if ex.in_body() => Some(ACK_POLL_WHILE_SENDING),
            _ => None,
        };
        let continue_deadline = ex.continue_deadline().map(tokio::time::Instant::from_std);
        let before_write = Instant::now();

        tokio::select! {
            biased;
            r = rd.read(read_buf) => {
                let now = Instant::now();
                let got = match r {
                    Ok(0) => ex.on_eof(now),
                    Ok(n) => ex.on_read(&read_buf[..n], now),
                    // The TCP connection ended without TLS close_notify (a server that died or
                    // dropped the connection): an end like any other, judged by the framing as
                    // curl and browsers do, so the reason says what was missing rather than
                    // what TLS thinks of it.
                    Err(e) if is_tls && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        ex.on_eof(now)
                    }
                    Err(e) => {
                        let error = UploadError::from_io(&e, "reading the response");
                        let error = note_unsent(error, ex.body_sent(), total_body);
                        return Err(retry_rule(error, ex.response_seen()));
                    }
                };
                let mut got: Received = got.map_err(to_failure)?;
                while got.final_head {
                    if let Some(acks) = acks.as_mut() {
                        // One TCP_INFO for both: the poll's, whose RTT is the one reported.
                        acks.report(input.task, total_body);
                        report.rtt_ms = acks.rtt_ms();
                    }
                    if let Some(head) = ex.response_head() {
                        input.task.emit_headers(&HeadersReceived {
                            header: ResponseHeaders::new(head.headers.clone()),
                            status_code: head.status,
                        });
                    }
                    got = ex.poll(now).map_err(to_failure)?;
                }
            }
            step = writer.step(&mut wr), if writing => {
                let now = Instant::now();
                match step {
                    Step::ChunkFlushed => {
                        if let Some(acks) = acks.as_mut() {
                            acks.mark(ex.body_sent());
                            acks.report(input.task, total_body);
                        }
                    }
                    Step::ReadToEnd => {}
                    Step::Finished => {
                        ex.on_flushed(now);
                        let socket = (!is_tls).then_some(head_written + ex.body_sent());
                        request_written(socket, acks.as_mut(), &ex, total_body, input.task);
                    }
                    // Keep reading: the server may have answered before closing.
                    Step::WriteFailed(e) => ex.on_write_failed(e),
                    Step::FileFailed(e) => return Err(Failure::fatal(e)),
                    Step::Wrote { head, body: body_n } => {
                        let head_done_before = ex.send_state() != SendState::Head;
                        ex.on_write(head, body_n, before_write, now);
                        head_written += head as u64;
                        let head_done = !head_done_before && ex.send_state() != SendState::Head;
                        let body_sent = ex.body_sent();
                        match acks.as_mut() {
                            Some(acks) if !is_tls => {
                                // Plain TCP: socket bytes are ours, counted exactly.
                                if head_done {
                                    // Body byte 0 starts here: interpolation needs a first mark.
                                    acks.mark_written(head_written, 0);
                                }
                                if ex.in_body() {
                                    acks.mark_written(head_written + body_sent, body_sent);
                                    if body_sent < total_body {
                                        // The last write's bytes cannot be acknowledged this
                                        // instant: the next poll reports them (issue 15).
                                        acks.report(input.task, total_body);
                                    }
                                }
                            }
                            Some(acks) => {
                                if head_done && body_n == 0 {
                                    acks.mark(0);
                                }
                                // TLS: mark once the records are flushed into the socket.
                                if ex.in_body() {
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
                ex.on_continue_timeout();
            }
        }
    }

    drop((rd, wr));
    if let Some(acks) = acks.as_mut() {
        if acks.acked_end().is_none() {
            acks.poll();
        }
        if let Some((at, source)) = acks.acked_end() {
            report.stamps.body_acked_end = Some(at);
            report.ack_source = Some(source);
        }
        report.progress_acknowledged = true;
        stream.socket_mut().put_ack_carry(acks.carry_out());
    }
    if ex.send_state() == SendState::Done && total_body > 0 {
        // The server answered after the whole body: the progress ends at exactly 100 %.
        input.task.emit_progress(total_body, total_body);
    }
    let body_path = writer.transfer.clone();
    let done = ex.finish().map_err(to_failure)?;
    let t = done.timings;
    report.stamps = ExchangeStamps {
        request_start: t.request_start,
        request_head_end: t.request_head_end,
        request_end: t.request_end,
        body_acked_end: report.stamps.body_acked_end,
        first_interim_response: t.first_interim_response,
        response_start: t.response_start,
        response_end: t.response_end,
    };
    report.first_interim_status = done.first_interim_status;
    report.early_response = done.early_response;
    report.send_bytes_count = done.head_written + done.body_sent;
    report.body_bytes_sent = done.body_sent;
    report.received_byted_count = done.wire_bytes;
    report.response_body_bytes = done.body.len() as u64;
    // HTTP/1.1 has no request framing: the body goes with Content-Length, never chunked.
    report.request_header_bytes = done.head_written;
    report.request_framing_bytes = 0;
    report.response_header_bytes = done.header_bytes;
    report.response_framing_bytes = done.framing_bytes;
    report.body = body_path;
    Ok(Response {
        head: done.head,
        body: done.body,
        reusable: done.reusable,
        report,
    })
}

/// The last byte of the request is written and flushed: the last mark for acknowledged
/// progress (`socket`: the socket bytes of this exchange, when known without asking the
/// kernel).
fn request_written(
    socket: Option<u64>,
    acks: Option<&mut AckTracker>,
    ex: &Http1Exchange,
    total_body: u64,
    task: &TaskShared,
) {
    if let Some(acks) = acks {
        acks.finished_writing(ex.body_sent(), socket);
        if socket.is_none() {
            // TLS: the records just reached the socket. On plain TCP nothing can be
            // acknowledged yet this instant: the next poll (the timer's, or the response
            // head's) reports it, one `TCP_INFO` fewer per upload (issue 15).
            acks.report(task, total_body);
        }
    }
}

/// The machine's failure as the upload's.
fn to_failure(f: ExchangeFailure) -> Failure {
    let error = match &f.error {
        ExchangeError::Closed { .. } => {
            // No note of the unsent body here: the detail already says what failed first.
            UploadError::new(ErrorKind::ConnectionClosed, f.error.to_string())
        }
        ExchangeError::Invalid { at_eof, .. } => {
            let kind = if *at_eof {
                ErrorKind::ConnectionClosed
            } else {
                ErrorKind::InvalidResponse
            };
            let error = UploadError::new(kind, f.error.to_string());
            note_unsent(error, f.body_sent, f.body_len)
        }
        ExchangeError::TooLarge { .. } => {
            UploadError::new(ErrorKind::ResponseTooLarge, f.error.to_string())
        }
        ExchangeError::NoHead | ExchangeError::Unfinished => {
            UploadError::new(ErrorKind::InvalidResponse, f.error.to_string())
        }
    };
    retry_rule(error, f.response_seen)
}

/// A close before any response byte is what a stale pooled connection looks like: the request
/// was not processed, and the caller may send it again on a fresh connection.
fn retry_rule(error: UploadError, response_seen: bool) -> Failure {
    Failure {
        retryable: !response_seen
            && matches!(
                error.kind(),
                ErrorKind::ConnectionClosed | ErrorKind::Network
            ),
        error,
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

    #[test]
    fn only_an_unseen_connection_failure_may_go_again() {
        let closed = UploadError::new(ErrorKind::ConnectionClosed, "x");
        assert!(retry_rule(closed.clone(), false).retryable);
        assert!(!retry_rule(closed, true).retryable);
        let invalid = UploadError::new(ErrorKind::InvalidResponse, "x");
        assert!(!retry_rule(invalid, false).retryable);
    }
}
