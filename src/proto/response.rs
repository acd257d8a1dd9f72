//! HTTP/1.x response decoding.
//!
//! [`ResponseDecoder`] turns the bytes of one exchange's response into
//! [`ResponseEvent`]s: any number of interim (1xx) heads, the final head,
//! the body in pieces, and the end. It owns a buffer; the driver
//! [`push`](ResponseDecoder::push)es whatever the socket gave it and
//! [`poll_event`](ResponseDecoder::poll_event)s until it gets `Ok(None)`
//! ("need more input"). Nothing here reads a socket or a clock, which is
//! what lets the driver stamp every event with the time of the read that
//! produced it.
//!
//! # Split independence
//!
//! The same bytes give the same events (body pieces aside, which only
//! coalesce differently) and the same error however they are split across
//! pushes. Heads are parsed with httparse, which cannot resume, so rather
//! than re-parsing on every push the decoder scans new bytes once and calls
//! httparse only at *checkpoints*: the end of the status line (to reject a
//! non-HTTP peer early) and the end of each empty line (where a head can
//! end). Each call sees exactly the bytes up to the checkpoint, so its
//! answer cannot depend on how much else happened to be buffered, and the
//! head-size limit is applied the same way: checkpoints past the limit are
//! never parsed.
//!
//! # Framing rules (RFC 9112 §6.3)
//!
//! - Responses to HEAD, 1xx, 204 and 304 have no body, whatever their
//!   headers say.
//! - `Transfer-Encoding` wins over `Content-Length`. If its last coding is
//!   `chunked` the body is chunked (see the `chunked` module), otherwise it
//!   runs to connection close. Other codings (gzip, ...) are not undone:
//!   the events carry the bytes as sent, minus chunk framing.
//! - Otherwise `Content-Length` gives the length; repeated fields or
//!   comma lists must agree (`5, 5` is accepted, `5, 6` is an error).
//! - Otherwise the body runs to connection close.
//!
//! # Choices
//!
//! - *obs-fold* (a header line continued on the next line by leading
//!   whitespace) is accepted and each fold replaced by spaces, as RFC 9112
//!   §5.2 requires of user agents; servers still emitting it are old, not
//!   hostile, and rejecting would only fail uploads that succeeded.
//! - Header values are decoded as UTF-8 lossily; names are ASCII tokens.
//! - Leading empty lines before a status line are skipped (httparse does;
//!   some servers send a stray CRLF after a body). They count toward the
//!   head-size limit and [`wire_bytes`](ResponseDecoder::wire_bytes).
//! - A status code below 100 is malformed; 101 is an error because we never
//!   ask to switch protocols; codes 600–999 are treated as final responses.
//! - Bytes after the end of the message are not an error: they stay
//!   buffered ([`buffered_len`](ResponseDecoder::buffered_len)) and make
//!   [`keep_alive`](ResponseDecoder::keep_alive) false, since the
//!   connection's state is then unknown.

use bytes::{Buf, Bytes, BytesMut};

use super::chunked::{ChunkedDecoder, Step};
pub use super::error::ProtoError;

/// A parsed response head (status line and header fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, 100..=999.
    pub status: u16,
    /// The reason phrase (may be empty; empty too if it was not ASCII).
    pub reason: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header fields in received order, names as received; values decoded
    /// as UTF-8 lossily, obs-folds replaced by spaces.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in received order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Does a comma-separated list header (`Connection`, ...) contain
    /// `token`, case-insensitively?
    fn list_contains(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
    }
}

/// Something the decoder found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEvent {
    /// An interim 1xx response (100 Continue, 103 Early Hints, ...); the
    /// final response follows. Never 101, which is an error.
    Interim(ResponseHead),
    /// The final response's head.
    Head(ResponseHead),
    /// A piece of the body, chunk framing removed; never empty.
    Body(Bytes),
    /// The message is complete.
    End,
}

/// How the final response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    CloseDelimited,
    /// No body: a response to HEAD, or a 204 or 304.
    None,
}

/// Resource limits for a [`ResponseDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Most bytes a head may take, from its first byte (leading empty lines
    /// included) to the end of the blank line. Also bounds a chunked
    /// body's trailer section. Default 64 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in one head; also bounds trailer fields.
    /// Default 128.
    pub max_headers: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_head_bytes: 64 * 1024,
            max_headers: 128,
        }
    }
}

/// Where the decoder is in the exchange.
#[derive(Debug, Clone)]
enum State {
    /// Reading a head (interim or final).
    Head,
    /// A `Content-Length` body with this many bytes to go (> 0).
    Length { remaining: u64 },
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// A body running to connection close.
    CloseDelimited,
    /// The message is complete; `End` not yet returned.
    EndPending,
    /// `End` returned.
    Done,
    /// An error was returned; it is returned again on every poll.
    Failed(ProtoError),
}

/// Progress of the line scan over the head being received.
#[derive(Debug, Clone, Copy, Default)]
struct HeadScan {
    /// Next buffer index to scan.
    pos: usize,
    /// Buffer index where the current line starts.
    line_start: usize,
    /// The current line has a byte other than CR.
    line_has_content: bool,
    /// The status line has been seen (ended by LF).
    status_seen: bool,
}

/// The bytes every status line starts with (httparse accepts 1.0 and 1.1).
const STATUS_PREFIX: &[u8] = b"HTTP/1.";

/// First size of the httparse header array; it doubles, up to the limit,
/// when a head has more fields, so small heads cost little.
const INITIAL_HEADER_SLOTS: usize = 32;

/// A push-based decoder for one HTTP/1.x response (see the module docs).
#[derive(Debug, Clone)]
pub struct ResponseDecoder {
    request_was_head: bool,
    limits: DecoderLimits,
    buf: BytesMut,
    state: State,
    eof: bool,
    scan: HeadScan,
    header_slots: usize,
    wire: u64,
    body_received: u64,
    /// Bytes of every head parsed (interim and final, leading empty lines included).
    head_bytes: u64,
    /// A chunked body's trailer field lines and framing, as of the last poll.
    chunk_trailer_fields: u64,
    chunk_framing: u64,
    framing: Option<BodyFraming>,
    persistent: bool,
}

impl ResponseDecoder {
    /// A decoder with default limits. `request_was_head`: the request was
    /// HEAD, so the final response has no body.
    pub fn new(request_was_head: bool) -> Self {
        Self::with_limits(request_was_head, DecoderLimits::default())
    }

    /// A decoder with the given limits.
    pub fn with_limits(request_was_head: bool, limits: DecoderLimits) -> Self {
        ResponseDecoder {
            request_was_head,
            limits,
            buf: BytesMut::new(),
            state: State::Head,
            eof: false,
            scan: HeadScan::default(),
            header_slots: INITIAL_HEADER_SLOTS.min(limits.max_headers),
            wire: 0,
            body_received: 0,
            head_bytes: 0,
            chunk_trailer_fields: 0,
            chunk_framing: 0,
            framing: None,
            persistent: false,
        }
    }

    /// Appends received bytes. Cheap; the work happens in
    /// [`poll_event`](Self::poll_event), which should be called until it
    /// returns `Ok(None)` after each push.
    ///
    /// Bytes pushed after [`push_eof`](Self::push_eof), or after an error,
    /// are ignored.
    pub fn push(&mut self, data: &[u8]) {
        if self.eof || matches!(self.state, State::Failed(_)) {
            return;
        }
        self.buf.extend_from_slice(data);
    }

    /// Records that the peer closed the connection. Afterwards
    /// [`poll_event`](Self::poll_event) ends a close-delimited body with
    /// [`ResponseEvent::End`], and reports an incomplete message as
    /// [`ProtoError::IncompleteHead`] or [`ProtoError::IncompleteBody`]
    /// (after returning the body bytes that did arrive).
    pub fn push_eof(&mut self) {
        self.eof = true;
    }

    /// The next event: `Ok(Some(event))`, or `Ok(None)` when more input is
    /// needed (or after `End`). After an error, the same error is returned
    /// on every call.
    pub fn poll_event(&mut self) -> Result<Option<ResponseEvent>, ProtoError> {
        let result = self.step();
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn step(&mut self) -> Result<Option<ResponseEvent>, ProtoError> {
        match &mut self.state {
            State::Failed(e) => Err(e.clone()),
            State::Done => Ok(None),
            State::EndPending => {
                self.state = State::Done;
                Ok(Some(ResponseEvent::End))
            }
            State::Head => self.poll_head(),
            State::Length { remaining } => {
                if self.buf.is_empty() {
                    return if self.eof {
                        Err(ProtoError::IncompleteBody {
                            received: self.body_received,
                            expected: match self.framing {
                                Some(BodyFraming::Length(n)) => Some(n),
                                _ => None,
                            },
                        })
                    } else {
                        Ok(None)
                    };
                }
                let n =
                    usize::try_from(*remaining).map_or(self.buf.len(), |r| r.min(self.buf.len()));
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.state = State::EndPending;
                }
                Ok(Some(self.take_body(n)))
            }
            State::Chunked(dec) => {
                let step = dec.decode(&mut self.buf, &mut self.wire);
                self.chunk_trailer_fields = dec.trailer_field_bytes();
                self.chunk_framing = dec.framing_bytes();
                match step? {
                    Step::Data(data) => {
                        self.body_received += data.len() as u64;
                        Ok(Some(ResponseEvent::Body(data)))
                    }
                    Step::Done => {
                        self.state = State::Done;
                        Ok(Some(ResponseEvent::End))
                    }
                    Step::NeedMore if self.eof => Err(ProtoError::IncompleteBody {
                        received: self.body_received,
                        expected: None,
                    }),
                    Step::NeedMore => Ok(None),
                }
            }
            State::CloseDelimited => {
                if !self.buf.is_empty() {
                    let n = self.buf.len();
                    Ok(Some(self.take_body(n)))
                } else if self.eof {
                    self.state = State::Done;
                    Ok(Some(ResponseEvent::End))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Splits `n` (> 0) body bytes off the buffer without copying.
    fn take_body(&mut self, n: usize) -> ResponseEvent {
        self.wire += n as u64;
        self.body_received += n as u64;
        ResponseEvent::Body(self.buf.split_to(n).freeze())
    }

    /// Scans new head bytes; parses at checkpoints (see the module docs).
    fn poll_head(&mut self) -> Result<Option<ResponseEvent>, ProtoError> {
        let limit = self.limits.max_head_bytes;
        while self.scan.pos < self.buf.len() && self.scan.pos < limit {
            let b = self.buf[self.scan.pos];
            let col = self.scan.pos - self.scan.line_start;
            self.scan.pos += 1;
            if b == b'\n' {
                let checkpoint = if self.scan.line_has_content {
                    !std::mem::replace(&mut self.scan.status_seen, true)
                } else {
                    self.scan.status_seen
                };
                self.scan.line_has_content = false;
                self.scan.line_start = self.scan.pos;
                if checkpoint {
                    if let Some(event) = self.try_parse_head(self.scan.pos)? {
                        return Ok(Some(event));
                    }
                }
                continue;
            }
            if b != b'\r' {
                self.scan.line_has_content = true;
            }
            if !self.scan.status_seen {
                let first = self.buf[self.scan.line_start];
                if first == b'\r' {
                    // Only an empty line may start with CR here.
                    if col > 0 {
                        return Err(ProtoError::MalformedStatusLine {
                            reason: "stray CR before the status line",
                        });
                    }
                } else if col < STATUS_PREFIX.len() && b != STATUS_PREFIX[col] {
                    return Err(ProtoError::MalformedStatusLine {
                        reason: "the peer did not answer with HTTP/1.0 or HTTP/1.1",
                    });
                }
            }
        }
        if self.buf.len() > limit {
            Err(ProtoError::HeadTooLarge { limit })
        } else if self.eof {
            Err(ProtoError::IncompleteHead {
                received: self.buf.len(),
            })
        } else {
            Ok(None)
        }
    }

    /// Runs httparse over the first `end` buffered bytes.
    fn try_parse_head(&mut self, end: usize) -> Result<Option<ResponseEvent>, ProtoError> {
        let Some((head, len)) = self.parse_prefix(end)? else {
            return Ok(None);
        };
        self.buf.advance(len);
        self.wire += len as u64;
        self.head_bytes += len as u64;
        self.scan = HeadScan::default();
        if head.status < 100 {
            return Err(ProtoError::MalformedStatusLine {
                reason: "status code below 100",
            });
        }
        if head.status == 101 {
            return Err(ProtoError::UnexpectedSwitchingProtocols);
        }
        if head.status < 200 {
            return Ok(Some(ResponseEvent::Interim(head)));
        }
        self.start_body(&head)?;
        Ok(Some(ResponseEvent::Head(head)))
    }

    /// httparse on `buf[..end]`, growing the header array on demand.
    fn parse_prefix(&mut self, end: usize) -> Result<Option<(ResponseHead, usize)>, ProtoError> {
        let max = self.limits.max_headers;
        let mut config = httparse::ParserConfig::default();
        config.allow_obsolete_multiline_headers_in_responses(true);
        loop {
            let mut slots = vec![httparse::EMPTY_HEADER; self.header_slots];
            let mut resp = httparse::Response::new(&mut slots);
            let input = self.buf.get(..end).unwrap_or(&self.buf[..]);
            match config.parse_response(&mut resp, input) {
                Ok(httparse::Status::Partial) => return Ok(None),
                Ok(httparse::Status::Complete(len)) => {
                    let head = ResponseHead {
                        status: resp.code.unwrap_or(0),
                        reason: resp.reason.unwrap_or("").to_owned(),
                        version: resp.version.unwrap_or(1),
                        headers: resp
                            .headers
                            .iter()
                            .map(|h| (h.name.to_owned(), header_value(h.value)))
                            .collect(),
                    };
                    return Ok(Some((head, len)));
                }
                Err(httparse::Error::TooManyHeaders) => {
                    if self.header_slots >= max {
                        return Err(ProtoError::TooManyHeaders { limit: max });
                    }
                    self.header_slots = self.header_slots.saturating_mul(2).max(1).min(max);
                }
                Err(e) => {
                    let reason = httparse_reason(e);
                    return Err(if resp.reason.is_none() {
                        ProtoError::MalformedStatusLine { reason }
                    } else {
                        ProtoError::MalformedHeader { reason }
                    });
                }
            }
        }
    }

    /// Decides framing and persistence from the final head.
    fn start_body(&mut self, head: &ResponseHead) -> Result<(), ProtoError> {
        let codings = transfer_codings(head)?;
        let has_length = head.header_values("content-length").next().is_some();
        let framing = if self.request_was_head || head.status == 204 || head.status == 304 {
            BodyFraming::None
        } else if let Some(chunked) = codings {
            if chunked {
                BodyFraming::Chunked
            } else {
                BodyFraming::CloseDelimited
            }
        } else if has_length {
            BodyFraming::Length(content_length(head)?)
        } else {
            BodyFraming::CloseDelimited
        };

        let close = head.list_contains("connection", "close");
        let mut persistent = if head.version >= 1 {
            !close
        } else {
            !close && head.list_contains("connection", "keep-alive")
        };
        // Both framing headers (a smuggling pattern), or Transfer-Encoding
        // from an HTTP/1.0 peer (RFC 9112 §6.1: treat framing as faulty):
        // decode as best we can, but do not reuse the connection.
        if codings.is_some() && (has_length || head.version == 0) {
            persistent = false;
        }
        if framing == BodyFraming::CloseDelimited {
            persistent = false;
        }

        self.persistent = persistent;
        self.framing = Some(framing);
        self.state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::EndPending,
            BodyFraming::Length(n) => State::Length { remaining: n },
            BodyFraming::Chunked => State::Chunked(ChunkedDecoder::new(
                self.limits.max_head_bytes,
                self.limits.max_headers,
            )),
            BodyFraming::CloseDelimited => State::CloseDelimited,
        };
        Ok(())
    }

    /// Bytes pushed but not consumed: an unfinished head or body piece not
    /// yet polled, the start of the final response after an interim one, or
    /// bytes after the end of the message.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Has any byte of the response currently being parsed arrived?
    ///
    /// After an [`Interim`](ResponseEvent::Interim) event this turns false
    /// until a byte of the next response is buffered, so the driver can time
    /// the first byte of the final response. Once the final head is parsed
    /// it stays true.
    pub fn head_started(&self) -> bool {
        match self.state {
            State::Head => !self.buf.is_empty(),
            _ => true,
        }
    }

    /// Bytes consumed by the response so far: every head (interim and
    /// final, leading empty lines included), body bytes, chunk framing and
    /// trailers. Bytes after the end of the message are not counted.
    pub fn wire_bytes(&self) -> u64 {
        self.wire
    }

    /// Of [`wire_bytes`](Self::wire_bytes), the header sections: every head (interim and
    /// final, leading empty lines included) and a chunked body's trailer field lines.
    pub fn header_bytes(&self) -> u64 {
        self.head_bytes + self.chunk_trailer_fields
    }

    /// Of [`wire_bytes`](Self::wire_bytes), the body with any chunk framing removed: the
    /// bytes the [`Body`](ResponseEvent::Body) events carried.
    pub fn body_bytes(&self) -> u64 {
        self.body_received
    }

    /// Of [`wire_bytes`](Self::wire_bytes), the chunked coding's own bytes: size lines (with
    /// extensions), the CRLF after each chunk's data, the last chunk and the final CRLF (0
    /// for a body that is not chunked). `header_bytes + body_bytes + framing_bytes ==
    /// wire_bytes`, always.
    pub fn framing_bytes(&self) -> u64 {
        self.chunk_framing
    }

    /// Is the final response complete (its [`End`](ResponseEvent::End)
    /// returned or ready to be)?
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::EndPending | State::Done)
    }

    /// May the connection carry another request?
    ///
    /// Only ever true once the response is complete, and then false for
    /// HTTP/1.0 without `Connection: keep-alive`, any `Connection: close`,
    /// close-delimited bodies, responses with both `Transfer-Encoding` and
    /// `Content-Length` (or `Transfer-Encoding` in HTTP/1.0), bytes left
    /// over after the message, or a closed connection.
    pub fn keep_alive(&self) -> bool {
        self.is_complete() && self.persistent && !self.eof && self.buf.is_empty()
    }

    /// How the final response's body is delimited; `None` until its head
    /// has been parsed.
    pub fn body_framing(&self) -> Option<BodyFraming> {
        self.framing
    }
}

/// A header value as a string: lossy UTF-8, folds turned into spaces.
fn header_value(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ")
    } else {
        s.into_owned()
    }
}

pub(crate) fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid character in a header name",
        httparse::Error::HeaderValue => "invalid character in a header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status code or reason phrase",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// `None` if no (non-empty) `Transfer-Encoding`; else whether the last
/// coding is `chunked`.
fn transfer_codings(head: &ResponseHead) -> Result<Option<bool>, ProtoError> {
    let mut last_is_chunked = None;
    let mut chunked_seen = false;
    for coding in head
        .header_values("transfer-encoding")
        .flat_map(|v| v.split(','))
    {
        let name = coding
            .split(';')
            .next()
            .unwrap_or("")
            .trim_matches([' ', '\t']);
        if name.is_empty() {
            continue;
        }
        let chunked = name.eq_ignore_ascii_case("chunked");
        if chunked && chunked_seen {
            return Err(ProtoError::InvalidTransferEncoding {
                reason: "chunked applied more than once",
            });
        }
        chunked_seen |= chunked;
        last_is_chunked = Some(chunked);
    }
    Ok(last_is_chunked)
}

/// The `Content-Length` of a head that has at least one.
fn content_length(head: &ResponseHead) -> Result<u64, ProtoError> {
    let mut value = None;
    for item in head
        .header_values("content-length")
        .flat_map(|v| v.split(','))
    {
        let digits = item.trim_matches([' ', '\t']);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProtoError::InvalidContentLength {
                reason: "not a decimal number",
            });
        }
        let n = digits
            .bytes()
            .try_fold(0u64, |acc, d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or(ProtoError::InvalidContentLength {
                reason: "too large",
            })?;
        if value.is_some_and(|v| v != n) {
            return Err(ProtoError::InvalidContentLength {
                reason: "conflicting values",
            });
        }
        value = Some(n);
    }
    value.ok_or(ProtoError::InvalidContentLength {
        reason: "not a decimal number",
    })
}

#[cfg(test)]
mod tests;
