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

use std::io::SeekFrom;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::acks::AckTracker;
use crate::error::{ErrorKind, UploadError};
use crate::headers::ResponseHeaders;
use crate::profile::{ExchangeFacts, Timeline};
use crate::proto::multipart::BodyPlan;
use crate::proto::response::{BodyFraming, ResponseDecoder, ResponseEvent, ResponseHead};
use crate::task::{HeadersReceived, TaskShared};
use crate::transport::stream::Stream;

/// What the exchange needs besides the connection.
pub(crate) struct ExchangeInput<'a> {
    pub head: &'a Bytes,
    /// The multipart body and the file it streams; `None` for a body-less request (the GET a
    /// 303 turns the upload into).
    pub body: Option<(&'a BodyPlan, &'a mut tokio::fs::File)>,
    /// `Some(wait)` when the head carries `Expect: 100-continue`.
    pub expect_continue: Option<Duration>,
    pub max_response_body: usize,
    pub chunk_size: usize,
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

/// Where the request writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Send {
    Head,
    AwaitContinue(tokio::time::Instant),
    Preamble,
    File,
    Epilogue,
    Flush,
    Done,
    /// Stopped before the end: an early final response, or a write error.
    Stopped,
}

impl Send {
    fn is_sending(self) -> bool {
        !matches!(self, Send::Done | Send::Stopped)
    }
}

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
    let (plan, mut file) = match input.body {
        Some((plan, file)) => {
            // From the start: a retry or a 307/308 redirect sends the whole body again.
            file.seek(SeekFrom::Start(0))
                .await
                .map_err(|e| fail(UploadError::new(ErrorKind::FileRead, e.to_string()), false))?;
            (Some(plan), Some(file))
        }
        None => (None, None),
    };
    let total_body = plan.map_or(0, |p| p.content_length());
    let file_len = plan.map_or(0, |p| p.file_len());
    let empty = Bytes::new();
    let preamble = plan.map_or(&empty, |p| p.preamble());
    let epilogue = plan.map_or(&empty, |p| p.epilogue());
    let is_tls = matches!(stream, Stream::Tls(_));
    let mut acks = if input.track_acks {
        AckTracker::new(stream)
    } else {
        None
    };
    // Under TLS with ack tracking, each body write is followed by a flush, so that a mark is
    // taken only once the records carrying it are in the socket.
    let mut chunk_flush = false;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut decoder = ResponseDecoder::new(false);
    let mut read_buf = vec![0u8; 64 * 1024];
    let mut file_buf = vec![0u8; input.chunk_size.max(4096)];
    let (mut file_pos, mut file_filled) = (0usize, 0usize);
    let mut file_left = file_len;

    let mut send = Send::Head;
    let mut offset = 0usize; // within the head, preamble or epilogue
    let mut head_written = 0u64;
    let mut body_sent = 0u64;
    let mut write_error: Option<std::io::Error> = None;
    // When the last write returned (the request's end if the response overtakes the flush).
    let mut last_write_at: Option<Instant> = None;

    let mut response: Option<ResponseHead> = None;
    let mut body: Vec<u8> = Vec::new();
    let mut complete = false;
    let mut eof = false;
    // Instant of the read that carried the first byte of the response being parsed now.
    let mut pending_start: Option<Instant> = None;
    facts.expect_continue = input.expect_continue.is_some();

    loop {
        if complete {
            if send == Send::Flush && write_error.is_none() {
                // Every byte was written and the response overtook the final flush (on plain
                // TCP a formality): finish it, this is not an early response.
                // The server answered, so it had every byte: the request ended when the write
                // carrying its last byte returned, before this late flush.
                match wr.flush().await {
                    Ok(()) => {
                        send = Send::Done;
                        request_written(
                            last_write_at.unwrap_or_else(Instant::now),
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
            if send.is_sending() {
                // The server answered before it had the whole request: the answer stands, the
                // connection cannot carry another request.
                facts.early_response = true;
                send = Send::Stopped;
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
        if send == Send::File && file_pos == file_filled {
            if file_left == 0 {
                send = Send::Epilogue;
                offset = 0;
                if let Some(acks) = acks.as_mut() {
                    acks.before_final_write();
                }
            } else if let Some(file) = file.as_deref_mut() {
                let want = (file_left.min(file_buf.len() as u64)) as usize;
                let n = file.read(&mut file_buf[..want]).await.map_err(|e| {
                    fail(UploadError::new(ErrorKind::FileRead, e.to_string()), false)
                })?;
                if n == 0 {
                    return Err(fail(
                        UploadError::new(
                            ErrorKind::FileChanged,
                            format!(
                                "the file ended after {} of {} bytes",
                                file_len - file_left,
                                file_len
                            ),
                        ),
                        decoder.wire_bytes() > 0,
                    ));
                }
                file_pos = 0;
                file_filled = n;
                file_left -= n as u64;
            }
        }
        let pending: &[u8] = match send {
            Send::Head => &input.head[offset..],
            Send::Preamble => &preamble[offset..],
            Send::File => &file_buf[file_pos..file_filled],
            Send::Epilogue => &epilogue[offset..],
            _ => &[],
        };
        let writing = !pending.is_empty() && write_error.is_none() && !chunk_flush;
        let flushing = (send == Send::Flush || chunk_flush) && write_error.is_none();
        // Poll the acknowledgement counters on a timer too: writes complete only when the
        // socket has room, and progress must grow with the network in between. After the last
        // write, poll faster to catch the moment everything is acknowledged.
        let ack_poll = match &acks {
            Some(a) if send == Send::Done && !a.all_acked() => Some(ACK_POLL_AFTER_WRITES),
            Some(_)
                if matches!(
                    send,
                    Send::Preamble | Send::File | Send::Epilogue | Send::Flush
                ) =>
            {
                Some(ACK_POLL_WHILE_SENDING)
            }
            _ => None,
        };
        let continue_deadline = match send {
            Send::AwaitContinue(deadline) => Some(deadline),
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
                    Err(e) => {
                        let seen = decoder.wire_bytes() > 0 || pending_start.is_some();
                        return Err(fail(UploadError::from_io(&e, "reading the response"), seen));
                    }
                }
                loop {
                    let event = decoder.poll_event().map_err(|e| {
                        let kind = if eof { ErrorKind::ConnectionClosed } else { ErrorKind::InvalidResponse };
                        // A close before any response byte is what a stale pooled connection
                        // looks like: the caller may retry it on a fresh connection.
                        let seen = decoder.wire_bytes() > 0 || pending_start.is_some();
                        fail(UploadError::new(kind, e.to_string()), seen)
                    })?;
                    match event {
                        None => break,
                        Some(ResponseEvent::Interim(head)) => {
                            if timeline.first_interim.is_none() {
                                timeline.first_interim = pending_start.or(Some(now));
                                facts.first_interim_status = head.status;
                            }
                            if head.status == 100 && matches!(send, Send::AwaitContinue(_)) {
                                send = Send::Preamble;
                                offset = 0;
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
                if eof && !complete {
                    // The decoder accepted EOF without finishing: treat as closed early.
                    continue;
                }
            }
            step = write_or_flush(&mut wr, pending, flushing), if writing || flushing => {
                let now = Instant::now();
                match step {
                    Step::Flushed(Ok(())) if chunk_flush => {
                        chunk_flush = false;
                        if let Some(acks) = acks.as_mut() {
                            acks.mark(body_sent);
                            acks.report(input.task, total_body);
                        }
                    }
                    Step::Flushed(Ok(())) => {
                        send = Send::Done;
                        request_written(now, timeline, acks.as_mut(), body_sent, total_body, input.task);
                    }
                    Step::Flushed(Err(e)) => {
                        write_error = Some(e);
                        send = Send::Stopped;
                    }
                    Step::Wrote(w) => match w {
                    Ok(0) => {
                        write_error = Some(std::io::ErrorKind::WriteZero.into());
                        send = Send::Stopped;
                    }
                    Ok(n) => {
                        last_write_at = Some(now);
                        match send {
                            Send::Head => {
                                if offset == 0 {
                                    timeline.request_start = Some(before_write);
                                }
                                offset += n;
                                head_written += n as u64;
                                if offset == input.head.len() {
                                    timeline.request_head_end = Some(now);
                                    if let Some(acks) = acks.as_mut() {
                                        // Body byte 0 starts here: interpolation needs a first mark.
                                        acks.mark(0);
                                    }
                                    offset = 0;
                                    send = match (plan, input.expect_continue) {
                                        (None, _) => Send::Flush,
                                        (Some(_), Some(wait)) => Send::AwaitContinue(tokio::time::Instant::from_std(now) + wait),
                                        (Some(_), None) => Send::Preamble,
                                    };
                                }
                            }
                            Send::Preamble | Send::Epilogue => {
                                offset += n;
                                body_sent += n as u64;
                                let len = if send == Send::Preamble { preamble.len() } else { epilogue.len() };
                                if offset == len {
                                    offset = 0;
                                    send = if send == Send::Preamble { Send::File } else { Send::Flush };
                                }
                            }
                            Send::File => {
                                file_pos += n;
                                body_sent += n as u64;
                            }
                            _ => {}
                        }
                        let in_body = matches!(send, Send::Preamble | Send::File | Send::Epilogue | Send::Flush);
                        match acks.as_mut() {
                            Some(_) if in_body && is_tls => chunk_flush = true,
                            Some(acks) if in_body => {
                                acks.mark(body_sent);
                                acks.report(input.task, total_body);
                            }
                            Some(_) => {}
                            None if body_sent > 0 => input.task.emit_progress(body_sent, total_body),
                            None => {}
                        }
                    }
                    Err(e) => {
                        // Keep reading: the server may have answered before closing.
                        write_error = Some(e);
                        send = Send::Stopped;
                    }
                    },
                }
            }
            _ = tokio::time::sleep(ack_poll.unwrap_or_default()), if ack_poll.is_some() => {
                if let Some(acks) = acks.as_mut() {
                    acks.report(input.task, total_body);
                }
            }
            _ = tokio::time::sleep_until(continue_deadline.unwrap_or_else(tokio::time::Instant::now)), if continue_deadline.is_some() => {
                // No 100 Continue in time: send the body anyway, as curl and browsers do.
                send = Send::Preamble;
                offset = 0;
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
    if send == Send::Done && total_body > 0 {
        // The server answered after the whole body: the progress ends at exactly 100 %.
        input.task.emit_progress(total_body, total_body);
    }
    facts.sent_bytes = head_written + body_sent;
    facts.body_bytes_sent = body_sent;
    facts.received_bytes = decoder.wire_bytes();
    facts.response_body_bytes = body.len() as u64;
    let head = response.ok_or_else(|| {
        fail(
            UploadError::new(ErrorKind::InvalidResponse, "response ended without a head"),
            true,
        )
    })?;
    let reusable = send == Send::Done && write_error.is_none() && decoder.keep_alive();
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
    timeline: &mut Timeline,
    acks: Option<&mut AckTracker>,
    body_sent: u64,
    total_body: u64,
    task: &TaskShared,
) {
    timeline.request_end = Some(now);
    if let Some(acks) = acks {
        acks.finished_writing(body_sent);
        acks.report(task, total_body);
    }
}

/// One step of the request writer: a write of the pending bytes, or the final flush.
enum Step {
    Wrote(std::io::Result<usize>),
    Flushed(std::io::Result<()>),
}

async fn write_or_flush<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    pending: &[u8],
    flushing: bool,
) -> Step {
    if flushing {
        Step::Flushed(wr.flush().await)
    } else {
        Step::Wrote(wr.write(pending).await)
    }
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
