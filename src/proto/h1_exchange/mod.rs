//! One HTTP/1.1 request–response exchange as a state machine: what may be written next, what
//! the bytes read mean, when the request and the response began and ended, and whether the
//! connection may carry another request.
//!
//! # Why a state machine
//!
//! An upload's exchange is not "write the request, then read the response". The server may
//! answer at any moment: with `100 Continue` (only then may the body go, when the request asked
//! with `Expect: 100-continue`), with a final answer before it has read the body (a 413: the
//! answer is the result, not the broken pipe that follows), or by closing. The driver therefore
//! writes and reads at the same time, and every decision about what the next byte may be, what
//! an event means and what the profile's request and response instants are is made here, from
//! the bytes and events the driver reports and the instants it passes in. Nothing here touches
//! a socket or a clock, so every rule is a unit test, and the driver (in `call`) is left with
//! I/O and stamps.
//!
//! # States of the request side
//!
//! ```text
//!                head written,                 100 Continue, or
//!                Expect sent                   the wait ran out
//!   Head ─────────────────────▶ AwaitContinue ─────────────────▶ Body
//!     │  head written, no Expect                                  │ last body byte written
//!     └──────────────────────────────────────────────────────────▶│ (or no body)
//!                                                                 ▼
//!                                  Done ◀─────── flushed ─────── Flush
//!
//!   any state ── a write failed ──▶ Stopped
//! ```
//!
//! The response side runs alongside: interim (1xx) heads, then the final head, the body, the
//! end. When the response completes while the request is still in `Head`, `AwaitContinue` or
//! `Body`, the server answered early ([`Finished::early_response`]); the connection is then not
//! reused. When it completes in `Flush` (every byte written, the flush pending: a formality on
//! plain TCP), the driver finishes the flush ([`Http1Exchange::wants_late_flush`]) and the
//! request ends when the write carrying its last byte returned.
//!
//! # Instants
//!
//! The driver passes the instant of each I/O event; this machine decides which of them are the
//! profile's ([`Timings`]):
//!
//! - `request_start`: the start of the write that carried the head's first byte;
//! - `request_head_end`: the return of the write that completed the head;
//! - `request_end`: the return of the flush after the write carrying the last byte (or of that
//!   write, when the response overtook the flush);
//! - `first_interim_response`: the read that carried the first interim head's first byte;
//! - `response_start`: the read that carried the final head's first byte (after any 1xx);
//! - `response_end`: the read that completed the response, or saw EOF of a close-delimited body.
//!
//! # Walk-through
//!
//! ```
//! use std::time::{Duration, Instant};
//! use uploadfile::proto::h1_exchange::{Http1Exchange, RequestSpec, SendState};
//!
//! let t0 = Instant::now();
//! let at = |ms| t0 + Duration::from_millis(ms);
//! let mut ex = Http1Exchange::new(
//!     RequestSpec { head_len: 100, body_len: Some(1000), expect_continue: Some(Duration::from_secs(1)) },
//!     1 << 20,
//! );
//! assert_eq!(ex.send_state(), SendState::Head);
//! ex.on_write(100, 0, at(0), at(1)); // the head, alone: it asks for 100 Continue
//! assert_eq!(ex.send_state(), SendState::AwaitContinue(at(1) + Duration::from_secs(1)));
//! assert!(!ex.may_write());
//! ex.on_read(b"HTTP/1.1 100 Continue\r\n\r\n", at(2))?;
//! assert_eq!(ex.send_state(), SendState::Body);
//! ex.on_write(0, 1000, at(3), at(4));
//! assert_eq!(ex.send_state(), SendState::Flush);
//! ex.on_flushed(at(5));
//! let got = ex.on_read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", at(9))?;
//! assert!(got.final_head); // paused: the driver tells the headers listeners now
//! assert_eq!(ex.response_head().map(|h| h.status), Some(200));
//! assert!(ex.poll(at(9))?.complete);
//! let done = ex.finish()?;
//! assert_eq!(done.head.status, 200);
//! assert_eq!(done.body, b"ok");
//! assert_eq!(done.timings.request_end, Some(at(5)));
//! assert_eq!(done.timings.first_interim_response, Some(at(2)));
//! assert!(done.reusable && !done.early_response);
//! # Ok::<(), uploadfile::proto::h1_exchange::ExchangeFailure>(())
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use super::response::{BodyFraming, ProtoError, ResponseDecoder, ResponseEvent, ResponseHead};

/// The request as the machine needs to know it: sizes, not bytes (the driver owns the bytes and
/// how they go out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Bytes of the encoded request head.
    pub head_len: u64,
    /// Bytes of the body (`Content-Length`), or `None` for a body-less request.
    pub body_len: Option<u64>,
    /// `Some(wait)` when the head carries `Expect: 100-continue`: the body waits for
    /// `100 Continue`, at most `wait` after the head was written.
    pub expect_continue: Option<Duration>,
}

/// Where the request side is, and so what the driver may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Write (the rest of) the head; without `Expect`, the body may follow in the same write.
    Head,
    /// The head is written; wait for `100 Continue` until the deadline.
    AwaitContinue(Instant),
    /// Write the body.
    Body,
    /// Every byte is written: flush.
    Flush,
    /// The request is written and flushed.
    Done,
    /// Writing stopped before the end (a write failed).
    Stopped,
}

/// The profile's instants of the exchange (see the module docs for each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// The start of the write that carried the head's first byte (`requestStart`).
    pub request_start: Option<Instant>,
    /// The return of the write that completed the head (`requestHeadEnd`).
    pub request_head_end: Option<Instant>,
    /// The request's last byte was written and flushed (`requestEnd`); `None` when it never was.
    pub request_end: Option<Instant>,
    /// The read that carried the first interim head's first byte (`firstInterimResponse`).
    pub first_interim_response: Option<Instant>,
    /// The read that carried the final head's first byte (`responseStart`).
    pub response_start: Option<Instant>,
    /// The read that completed the response (`responseEnd`).
    pub response_end: Option<Instant>,
}

/// What one read (or the end of the connection) brought, as far as the machine went with it.
///
/// Decoding pauses right after the final head, so the driver can tell the headers listeners
/// before any of the body is taken in (a body over the cap fails only after the headers were
/// announced); it then resumes with [`Http1Exchange::poll`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// The final response head arrived: [`Http1Exchange::response_head`] has it now, and
    /// [`Http1Exchange::poll`] goes on with what else was read.
    pub final_head: bool,
    /// The response is complete (now, or it already was).
    pub complete: bool,
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// The connection ended before the response was complete; `write_error` is the write
    /// failure that came first, if any.
    Closed {
        /// The failed write's error, as text.
        write_error: Option<String>,
    },
    /// The response could not be decoded (`at_eof`: the decoder failed on the connection's end,
    /// e.g. a body cut short).
    Invalid {
        /// What the decoder found.
        error: ProtoError,
        /// The failure was found when the connection ended.
        at_eof: bool,
    },
    /// The response is larger than the cap.
    TooLarge {
        /// The cap in bytes.
        cap: usize,
        /// The `Content-Length` that announced it, if that is how it was found.
        announced: Option<u64>,
    },
    /// The response ended without a final head.
    NoHead,
    /// [`Http1Exchange::finish`] was called before the response was complete (a driver's
    /// mistake, reported rather than trusted).
    Unfinished,
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Closed {
                write_error: Some(e),
            } => write!(f, "while sending the request: {e}"),
            ExchangeError::Closed { write_error: None } => {
                f.write_str("before the response was complete")
            }
            ExchangeError::Invalid { error, .. } => write!(f, "{error}"),
            ExchangeError::TooLarge {
                cap,
                announced: Some(n),
            } => write!(f, "Content-Length {n} exceeds the cap of {cap} bytes"),
            ExchangeError::TooLarge {
                cap,
                announced: None,
            } => write!(f, "the body exceeds the cap of {cap} bytes"),
            ExchangeError::NoHead => f.write_str("response ended without a head"),
            ExchangeError::Unfinished => f.write_str("the response is not complete"),
        }
    }
}

/// A failed exchange, with what the driver needs to report it and to decide on a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeFailure {
    /// What went wrong.
    pub error: ExchangeError,
    /// Some byte of a response had arrived (a request that saw none may have been unprocessed).
    pub response_seen: bool,
    /// Body bytes written when it failed: a connection that failed before the body was all
    /// written says how far it got.
    pub body_sent: u64,
    /// The body's length (0 without a body).
    pub body_len: u64,
}

impl fmt::Display for ExchangeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ExchangeFailure {}

/// A completed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The final response's head.
    pub head: ResponseHead,
    /// Its body, framing removed.
    pub body: Vec<u8>,
    /// The profile's instants.
    pub timings: Timings,
    /// The status of the first interim response (0 if none).
    pub first_interim_status: u16,
    /// The server answered before the request was completely sent.
    pub early_response: bool,
    /// The whole request was written and flushed.
    pub request_complete: bool,
    /// The connection may carry another request.
    pub reusable: bool,
    /// Bytes of the head written.
    pub head_written: u64,
    /// Bytes of the body written.
    pub body_sent: u64,
    /// Bytes of the response as read, framing included (`receivedBytedCount`).
    pub wire_bytes: u64,
    /// Of `wire_bytes`, the header sections: every head (interim 1xx ones included) and a
    /// chunked body's trailer fields (`responseHeaderBytesReceived`).
    pub header_bytes: u64,
    /// Of `wire_bytes`, the chunked coding's own bytes (`responseFramingBytes`; 0 unless the
    /// body was chunked). The rest is the body: `body.len()`.
    pub framing_bytes: u64,
}

/// One HTTP/1.1 exchange (see the module docs).
#[derive(Debug)]
pub struct Http1Exchange {
    spec: RequestSpec,
    state: SendState,
    head_written: u64,
    body_sent: u64,
    /// When the last write returned (the request's end if the response overtakes the flush).
    last_write_at: Option<Instant>,
    write_error: Option<String>,
    decoder: ResponseDecoder,
    max_response_body: usize,
    /// The read that carried the first byte of the response being parsed now.
    pending_start: Option<Instant>,
    timings: Timings,
    first_interim_status: u16,
    head: Option<ResponseHead>,
    body: Vec<u8>,
    complete: bool,
    eof: bool,
}

impl Http1Exchange {
    /// A new exchange for `spec`, accepting response bodies up to `max_response_body` bytes.
    pub fn new(spec: RequestSpec, max_response_body: usize) -> Http1Exchange {
        Http1Exchange {
            spec,
            state: SendState::Head,
            head_written: 0,
            body_sent: 0,
            last_write_at: None,
            write_error: None,
            decoder: ResponseDecoder::new(false),
            max_response_body,
            pending_start: None,
            timings: Timings::default(),
            first_interim_status: 0,
            head: None,
            body: Vec::new(),
            complete: false,
            eof: false,
        }
    }

    /// Where the request side is.
    pub fn send_state(&self) -> SendState {
        self.state
    }

    /// The driver may write (or flush) now.
    pub fn may_write(&self) -> bool {
        matches!(
            self.state,
            SendState::Head | SendState::Body | SendState::Flush
        ) && self.write_error.is_none()
            && !self.complete
    }

    /// The head is written and the body is being (or has been) written: progress counts.
    pub fn in_body(&self) -> bool {
        matches!(self.state, SendState::Body | SendState::Flush)
    }

    /// When the wait for `100 Continue` runs out, while waiting for it.
    pub fn continue_deadline(&self) -> Option<Instant> {
        match self.state {
            SendState::AwaitContinue(deadline) => Some(deadline),
            _ => None,
        }
    }

    /// The wait for `100 Continue` ran out: send the body anyway, as curl and browsers do.
    pub fn on_continue_timeout(&mut self) {
        self.start_body();
    }

    /// A write that began at `started` and returned at `now` carried `head` bytes of the head
    /// and `body` bytes of the body.
    pub fn on_write(&mut self, head: usize, body: usize, started: Instant, now: Instant) {
        self.last_write_at = Some(now);
        if head > 0 && self.head_written == 0 {
            self.timings.request_start = Some(started);
        }
        self.head_written += head as u64;
        self.body_sent += body as u64;
        if self.state == SendState::Head && self.head_written >= self.spec.head_len {
            self.timings.request_head_end = Some(now);
            self.state = match (self.spec.body_len, self.spec.expect_continue) {
                (None, _) => SendState::Flush,
                (Some(_), Some(wait)) => SendState::AwaitContinue(now + wait),
                (Some(_), None) => SendState::Body,
            };
        }
        if self.state == SendState::Body && self.body_sent >= self.spec.body_len.unwrap_or(0) {
            self.state = SendState::Flush;
        }
    }

    /// The flush after the last byte returned at `now`: the request is written.
    pub fn on_flushed(&mut self, now: Instant) {
        if self.state == SendState::Flush {
            self.state = SendState::Done;
            self.timings.request_end = Some(now);
        }
    }

    /// A write or flush failed: stop writing (the server may still have answered).
    pub fn on_write_failed(&mut self, error: impl fmt::Display) {
        self.write_error = Some(error.to_string());
        self.state = SendState::Stopped;
    }

    /// The late flush (see [`wants_late_flush`](Self::wants_late_flush)) failed: the request
    /// counts as not completely sent, and the connection is not reused.
    pub fn on_late_flush_failed(&mut self, error: impl fmt::Display) {
        self.write_error = Some(error.to_string());
    }

    /// The response completed while the final flush was pending: the driver finishes the flush
    /// and reports it with [`on_late_flush`](Self::on_late_flush).
    pub fn wants_late_flush(&self) -> bool {
        self.complete && self.state == SendState::Flush && self.write_error.is_none()
    }

    /// The late flush returned: the server answered, so it had every byte, and the request
    /// ended when the write carrying its last byte returned (before this flush). Returns that
    /// instant.
    pub fn on_late_flush(&mut self, now: Instant) -> Instant {
        let end = self.last_write_at.unwrap_or(now);
        if self.state == SendState::Flush {
            self.state = SendState::Done;
            self.timings.request_end = Some(end);
        }
        end
    }

    /// Bytes read at `now`.
    pub fn on_read(&mut self, bytes: &[u8], now: Instant) -> Result<Received, ExchangeFailure> {
        self.pending_start.get_or_insert(now);
        self.decoder.push(bytes);
        self.poll(now)
    }

    /// Go on with what was read at `now` after a pause at the final head (see [`Received`]).
    pub fn poll(&mut self, now: Instant) -> Result<Received, ExchangeFailure> {
        self.drain(now)
    }

    /// The connection ended (EOF, or TLS without `close_notify`) at `now`. The response may
    /// complete now (a close-delimited body); if it does not, [`failure_at_close`] says why.
    ///
    /// [`failure_at_close`]: Self::failure_at_close
    pub fn on_eof(&mut self, now: Instant) -> Result<Received, ExchangeFailure> {
        self.eof = true;
        self.decoder.push_eof();
        self.poll(now)
    }

    /// The connection ended and the response is not complete: the failure to report.
    pub fn failure_at_close(&self) -> Option<ExchangeFailure> {
        (self.eof && !self.complete).then(|| {
            self.failure(
                ExchangeError::Closed {
                    write_error: self.write_error.clone(),
                },
                self.decoder.wire_bytes() > 0,
            )
        })
    }

    /// Some byte of a response has arrived (for a read error's retry decision).
    pub fn response_seen(&self) -> bool {
        self.decoder.wire_bytes() > 0 || self.pending_start.is_some()
    }

    /// Body bytes written so far.
    pub fn body_sent(&self) -> u64 {
        self.body_sent
    }

    /// The final response head, once it arrived.
    pub fn response_head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// The response is complete.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The completed exchange. Call once the response is complete (and any late flush done);
    /// before that, or without a final head, it is a failure.
    pub fn finish(self) -> Result<Finished, ExchangeFailure> {
        if let Some(failure) = self.failure_at_close() {
            return Err(failure);
        }
        let Some(head) = self.head.clone() else {
            return Err(self.failure(ExchangeError::NoHead, true));
        };
        if !self.complete {
            let seen = self.response_seen();
            return Err(self.failure(ExchangeError::Unfinished, seen));
        }
        let request_complete = self.state == SendState::Done;
        // The server answered before it had the whole request: the answer stands, the
        // connection cannot carry another request. (A request stopped by a write error is not
        // "early": the failure to write is what ended it.)
        let early_response = !matches!(self.state, SendState::Done | SendState::Stopped);
        let reusable = request_complete && self.write_error.is_none() && self.decoder.keep_alive();
        Ok(Finished {
            head,
            timings: self.timings,
            first_interim_status: self.first_interim_status,
            early_response,
            request_complete,
            reusable,
            head_written: self.head_written,
            body_sent: self.body_sent,
            wire_bytes: self.decoder.wire_bytes(),
            header_bytes: self.decoder.header_bytes(),
            framing_bytes: self.decoder.framing_bytes(),
            body: self.body,
        })
    }

    fn start_body(&mut self) {
        if matches!(self.state, SendState::AwaitContinue(_)) {
            self.state = if self.body_sent >= self.spec.body_len.unwrap_or(0) {
                SendState::Flush
            } else {
                SendState::Body
            };
        }
    }

    fn failure(&self, error: ExchangeError, response_seen: bool) -> ExchangeFailure {
        ExchangeFailure {
            error,
            response_seen,
            body_sent: self.body_sent,
            body_len: self.spec.body_len.unwrap_or(0),
        }
    }

    /// Turn what the decoder has into events, at the instant of the read that brought it.
    fn drain(&mut self, now: Instant) -> Result<Received, ExchangeFailure> {
        let mut got = Received::default();
        loop {
            let event = match self.decoder.poll_event() {
                Ok(event) => event,
                Err(error) => {
                    let seen = self.response_seen();
                    let at_eof = self.eof;
                    return Err(self.failure(ExchangeError::Invalid { error, at_eof }, seen));
                }
            };
            match event {
                None => break,
                Some(ResponseEvent::Interim(head)) => {
                    if self.timings.first_interim_response.is_none() {
                        self.timings.first_interim_response = self.pending_start.or(Some(now));
                        self.first_interim_status = head.status;
                    }
                    if head.status == 100 {
                        self.start_body();
                    }
                    // The next response's first byte came in this same read, if any is left.
                    self.pending_start = (self.decoder.buffered_len() > 0).then_some(now);
                }
                Some(ResponseEvent::Head(head)) => {
                    self.timings.response_start = self.pending_start.or(Some(now));
                    if let Some(BodyFraming::Length(n)) = self.decoder.body_framing() {
                        if n > self.max_response_body as u64 {
                            let cap = self.max_response_body;
                            let error = ExchangeError::TooLarge {
                                cap,
                                announced: Some(n),
                            };
                            return Err(self.failure(error, true));
                        }
                    }
                    self.head = Some(head);
                    got.final_head = true;
                    break;
                }
                Some(ResponseEvent::Body(bytes)) => {
                    if self.body.len() + bytes.len() > self.max_response_body {
                        let cap = self.max_response_body;
                        let error = ExchangeError::TooLarge {
                            cap,
                            announced: None,
                        };
                        return Err(self.failure(error, true));
                    }
                    self.body.extend_from_slice(&bytes);
                }
                Some(ResponseEvent::End) => {
                    self.timings.response_end = Some(now);
                    self.complete = true;
                    break;
                }
            }
        }
        got.complete = self.complete;
        Ok(got)
    }
}

#[cfg(test)]
mod tests;
