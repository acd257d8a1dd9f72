//! The HTTP `CONNECT` tunnel through an HTTP(S) proxy: the request head, and a decoder for the
//! proxy's answer, sans-IO.
//!
//! # Why its own decoder
//!
//! [`ResponseDecoder`](super::ResponseDecoder) decodes a response *and its body*; the answer to
//! `CONNECT` has no body (RFC 9110 §9.3.6): a 2xx turns the connection into the tunnel right
//! after the head, and the bytes that follow belong to the origin. This decoder stops at the end
//! of the final head and says what it was, so the driver never reads past it by accident, and
//! every hostile answer (garbage, an endless head, a 101, a body after the 2xx) has its own error.
//!
//! # Rules
//!
//! - Interim `1xx` heads before the final one are skipped and counted in the head's bytes; a
//!   `101 Switching Protocols` is an error (we never ask to switch). The size limit
//!   ([`MAX_HEAD_BYTES`], 64 KiB) is for all heads together, so endless interim heads end too.
//! - Any 2xx opens the tunnel ([`ConnectOutcome::Established`]); any other final status is a
//!   refusal ([`ConnectOutcome::Refused`]), not an error here: its body (an error page) is not
//!   read. For a `407` the outcome carries the realm and the schemes of `Proxy-Authenticate`.
//! - **A body after a 2xx.** RFC 9110 §9.3.6 says a server MUST NOT send `Content-Length` or
//!   `Transfer-Encoding` in a 2xx answer to `CONNECT` and a client MUST ignore them: they are
//!   ignored (a 2xx with `Content-Length: 5` and nothing after its head opens the tunnel). The
//!   same section says the bytes after the head come from the origin. But the tunnels opened here
//!   carry TLS or HTTP, where the client speaks first, and the driver reads the answer before it
//!   writes a byte into the tunnel: nothing from the origin can be due yet. So bytes that arrive
//!   *in the same read as the 2xx head* are a body the proxy should not have sent (or an origin
//!   that broke its protocol); the decoder itself reports them
//!   ([`ConnectError::BodyAfterEstablished`], "the proxy sent N bytes after its 200 answer to
//!   CONNECT (a CONNECT response has no body)") rather than handing them on, where TLS would fail
//!   on them with a less telling error. Bytes that arrive in a later read are beyond what a
//!   decoder can see; they reach the tunnel's first reader.
//! - Input arrives split anywhere; the outcome does not depend on the split, except for how many
//!   bytes that error counts and how many bytes [`ConnectError::NotHttp`] quotes. The buffer never
//!   holds more than the head limit plus one byte.
//! - Errors are sticky: after one, every [`receive`](ConnectResponse::receive) returns it again.
//!
//! # The request
//!
//! [`connect_request`] writes `CONNECT host:port HTTP/1.1`, `Host`, `Proxy-Authorization: Basic`
//! (only with credentials: they are sent up front, as curl does once it knows the proxy wants
//! them, so a 407 never costs a second round trip), `User-Agent`, then the empty line. It sends
//! no `Proxy-Connection: Keep-Alive`, which curl still does: RFC 7230 §A.1.2 asks clients not to
//! send that header in any request, and the connection is kept either way (a 2xx makes it the
//! tunnel; after a refusal it is closed).

use std::fmt;

use super::response::httparse_reason;

/// The most bytes of all heads of the answer together (interim ones included).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields in one head.
pub(crate) const MAX_HEADERS: usize = 128;
/// The most characters kept of a reason phrase, a realm or a scheme name.
const MAX_TEXT: usize = 100;
/// The most scheme names kept from `Proxy-Authenticate`.
const MAX_SCHEMES: usize = 16;
/// The most bytes [`ConnectError::NotHttp`] quotes.
const QUOTE_MAX: usize = 16;

/// How the caller maps a [`ConnectError`] to an error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectErrorCategory {
    /// The proxy's answer is not what HTTP allows (`invalid proxy response`). Also the driver's
    /// misuse of the decoder ([`ConnectError::Misuse`]), which a correct driver never sees.
    Protocol,
    /// The inputs cannot be sent (`invalid proxy`, or the upload's own input).
    Input,
    /// The proxy closed the connection before its answer was complete (`invalid proxy response`).
    Closed,
}

/// Why a `CONNECT` request cannot be written or its answer is unusable. `Display` is a sentence
/// for the error's detail; it never contains a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectError {
    // ---- bad input (category Input)
    /// The target's host is empty.
    EmptyHost,
    /// The target's host contains a byte that cannot go in a request line (a control byte or
    /// a space).
    HostByte {
        /// The byte.
        byte: u8,
    },
    /// The target's host starts with `[` but is not `[...]`.
    HostBrackets,
    /// The proxy user name contains `:`, which Basic authentication cannot carry (RFC 7617).
    UserColon,
    /// The proxy user name or password contains a control character (RFC 7617 forbids them).
    CredentialControl {
        /// `"user name"` or `"password"`.
        which: &'static str,
    },
    /// The `User-Agent` contains a byte that cannot go in a header value.
    UserAgentByte {
        /// The byte.
        byte: u8,
    },
    // ---- protocol violations (category Protocol)
    /// The answer does not start with `HTTP/`.
    NotHttp {
        /// Its first bytes (up to 16), printable ASCII as is, others as `\xNN`.
        start: String,
    },
    /// The head is not valid HTTP/1.x.
    MalformedHead {
        /// What is wrong.
        reason: &'static str,
    },
    /// No end of head within [`MAX_HEAD_BYTES`].
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A head has more than [`MAX_HEADERS`] fields.
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// `101 Switching Protocols`, which `CONNECT` never asks for.
    SwitchingProtocols,
    /// Bytes followed the 2xx head in the same read (see the module docs).
    BodyAfterEstablished {
        /// The 2xx status.
        status: u16,
        /// How many bytes followed the head.
        bytes: usize,
    },
    /// The driver used the decoder out of order (bytes or a close after the outcome). Never
    /// the proxy's doing.
    Misuse(&'static str),
    // ---- closed (category Closed)
    /// The proxy closed the connection before the end of its (final) head.
    Closed {
        /// The bytes of its answer that had arrived.
        received: usize,
    },
}

impl ConnectError {
    /// How the caller maps this error to an error kind.
    pub(crate) fn category(&self) -> ConnectErrorCategory {
        match self {
            ConnectError::EmptyHost
            | ConnectError::HostByte { .. }
            | ConnectError::HostBrackets
            | ConnectError::UserColon
            | ConnectError::CredentialControl { .. }
            | ConnectError::UserAgentByte { .. } => ConnectErrorCategory::Input,
            ConnectError::NotHttp { .. }
            | ConnectError::MalformedHead { .. }
            | ConnectError::HeadTooLarge { .. }
            | ConnectError::TooManyHeaders { .. }
            | ConnectError::SwitchingProtocols
            | ConnectError::BodyAfterEstablished { .. }
            | ConnectError::Misuse(_) => ConnectErrorCategory::Protocol,
            ConnectError::Closed { .. } => ConnectErrorCategory::Closed,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::EmptyHost => f.write_str("the CONNECT target's host is empty"),
            ConnectError::HostByte { byte } => write!(
                f,
                "the CONNECT target's host contains the byte 0x{byte:02x}, which cannot go in a \
                 request line"
            ),
            ConnectError::HostBrackets => f.write_str(
                "the CONNECT target's host starts with '[' but is not a bracketed IPv6 address",
            ),
            ConnectError::UserColon => f.write_str(
                "the proxy user name contains ':', which Basic authentication cannot carry \
                 (RFC 7617)",
            ),
            ConnectError::CredentialControl { which } => write!(
                f,
                "the proxy {which} contains a control character, which Basic authentication \
                 forbids (RFC 7617)"
            ),
            ConnectError::UserAgentByte { byte } => write!(
                f,
                "the User-Agent contains the byte 0x{byte:02x}, which cannot go in a header"
            ),
            ConnectError::NotHttp { start } => write!(
                f,
                "the proxy's answer to CONNECT is not HTTP: it starts with \"{start}\""
            ),
            ConnectError::MalformedHead { reason } => {
                write!(f, "the proxy's answer to CONNECT is malformed: {reason}")
            }
            ConnectError::HeadTooLarge { limit } => write!(
                f,
                "the proxy's answer to CONNECT has no end of head within {limit} bytes"
            ),
            ConnectError::TooManyHeaders { limit } => write!(
                f,
                "the proxy's answer to CONNECT has more than {limit} header fields"
            ),
            ConnectError::SwitchingProtocols => f.write_str(
                "the proxy answered CONNECT with 101 Switching Protocols, which we did not ask for",
            ),
            ConnectError::BodyAfterEstablished { status, bytes } => write!(
                f,
                "the proxy sent {bytes} byte{} after its {status} answer to CONNECT (a CONNECT \
                 response has no body)",
                if *bytes == 1 { "" } else { "s" }
            ),
            ConnectError::Misuse(what) => write!(f, "CONNECT decoder used out of order: {what}"),
            ConnectError::Closed { received: 0 } => {
                f.write_str("the proxy closed the connection without answering CONNECT")
            }
            ConnectError::Closed { received } => write!(
                f,
                "the proxy closed the connection after {received} byte{} of its answer to \
                 CONNECT, before the end of its head",
                if *received == 1 { "" } else { "s" }
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

/// The `CONNECT` request head: `CONNECT host:port HTTP/1.1`, `Host: host:port` (an IPv6 host in
/// brackets in both; a host already in brackets is kept), `Proxy-Authorization: Basic ...` when
/// credentials are given, `User-Agent` unless `user_agent` is empty, and the empty line. The host
/// must be non-empty without control bytes or spaces; see [`basic_credentials`] for the
/// credentials.
pub(crate) fn connect_request(
    host: &str,
    port: u16,
    credentials: Option<(&str, &str)>,
    user_agent: &str,
) -> Result<Vec<u8>, ConnectError> {
    if host.is_empty() {
        return Err(ConnectError::EmptyHost);
    }
    if let Some(&byte) = host.as_bytes().iter().find(|&&b| b <= b' ' || b == 0x7f) {
        return Err(ConnectError::HostByte { byte });
    }
    let authority = if host.starts_with('[') {
        if host.len() < 3 || !host.ends_with(']') {
            return Err(ConnectError::HostBrackets);
        }
        format!("{host}:{port}")
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    if let Some(&byte) = user_agent
        .as_bytes()
        .iter()
        .find(|&&b| (b < b' ' && b != b'\t') || b == 0x7f)
    {
        return Err(ConnectError::UserAgentByte { byte });
    }
    let authorization = credentials
        .map(|(user, password)| basic_credentials(user, password))
        .transpose()?;

    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(value) = authorization {
        head.push_str("Proxy-Authorization: ");
        head.push_str(&value);
        head.push_str("\r\n");
    }
    if !user_agent.is_empty() {
        head.push_str("User-Agent: ");
        head.push_str(user_agent);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    Ok(head.into_bytes())
}

/// The value of a `Proxy-Authorization` header for Basic authentication: `Basic ` and the
/// Base64 of `user:password` (UTF-8). Also for absolute-form requests through an HTTP proxy.
/// The user name must not contain `:`, and neither may contain a control character (RFC 7617).
pub(crate) fn basic_credentials(user: &str, password: &str) -> Result<String, ConnectError> {
    if user.contains(':') {
        return Err(ConnectError::UserColon);
    }
    for (which, text) in [("user name", user), ("password", password)] {
        if text.chars().any(char::is_control) {
            return Err(ConnectError::CredentialControl { which });
        }
    }
    let mut pair = Vec::with_capacity(user.len() + 1 + password.len());
    pair.extend_from_slice(user.as_bytes());
    pair.push(b':');
    pair.extend_from_slice(password.as_bytes());
    Ok(format!("Basic {}", base64(&pair)))
}

/// Base64 with padding (RFC 4648 §4).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |v: u32, shift: u32| char::from(ALPHABET[((v >> shift) & 0x3f) as usize]);
    let mut out = String::with_capacity(input.len().div_ceil(3).saturating_mul(4));
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(sextet(v, 18));
        out.push(sextet(v, 12));
        out.push(if chunk.len() > 1 { sextet(v, 6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(v, 0) } else { '=' });
    }
    out
}

/// What the proxy answered to `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectOutcome {
    /// A 2xx: the tunnel is open; the next byte on the connection is the origin's.
    Established {
        /// The status (200..=299).
        status: u16,
        /// The bytes of the answer's heads, interim ones included.
        head_bytes: usize,
    },
    /// Any other final status: the proxy did not open the tunnel.
    Refused {
        /// The status.
        status: u16,
        /// The reason phrase, printable ASCII only (others as `?`), at most 100 characters.
        reason: String,
        /// For a 407, the realm of `Proxy-Authenticate`: the first `Basic` challenge's, else the
        /// first challenge's that has one; sanitized and capped as `reason`.
        realm: Option<String>,
        /// For a 407, the schemes `Proxy-Authenticate` offers (`Basic`, `Digest`,
        /// `Negotiate`, ...), in order, each once; sanitized, at most 16.
        schemes: Vec<String>,
    },
}

/// Where the decoder is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Reading,
    Answered,
    Failed(ConnectError),
}

/// The decoder of the proxy's answer to `CONNECT` (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct ConnectResponse {
    /// The current head's bytes (at most the remaining head budget plus one).
    buf: Vec<u8>,
    /// Bytes of the interim heads already parsed.
    consumed: usize,
    /// Every byte received.
    received: usize,
    /// Where the search for the end of the head resumes.
    scan: usize,
    /// Whether the current head's status line was checked.
    line_checked: bool,
    state: State,
}

impl Default for ConnectResponse {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectResponse {
    /// A decoder waiting for the answer's first byte.
    pub(crate) fn new() -> Self {
        ConnectResponse {
            buf: Vec::new(),
            consumed: 0,
            received: 0,
            scan: 0,
            line_checked: false,
            state: State::Reading,
        }
    }

    /// Feeds bytes read from the proxy. `Ok(None)`: read more. After the outcome, returns
    /// [`ConnectError::Misuse`]; after an error, that error again.
    pub(crate) fn receive(&mut self, bytes: &[u8]) -> Result<Option<ConnectOutcome>, ConnectError> {
        match &self.state {
            State::Reading => {}
            State::Answered => return Err(ConnectError::Misuse("bytes received after the answer")),
            State::Failed(e) => return Err(e.clone()),
        }
        self.received = self.received.saturating_add(bytes.len());
        let result = self.feed(bytes);
        match &result {
            Ok(None) => {}
            Ok(Some(_)) => {
                self.state = State::Answered;
                self.buf = Vec::new();
            }
            Err(e) => {
                self.state = State::Failed(e.clone());
                self.buf = Vec::new();
            }
        }
        result
    }

    /// The proxy closed the connection (EOF): what that means now. Before the outcome,
    /// [`ConnectError::Closed`]; after an error, that error; after the outcome,
    /// [`ConnectError::Misuse`] (the tunnel's end is the caller's business).
    pub(crate) fn closed(&mut self) -> ConnectError {
        match &self.state {
            State::Reading => {
                let error = ConnectError::Closed {
                    received: self.received,
                };
                self.state = State::Failed(error.clone());
                self.buf = Vec::new();
                error
            }
            State::Answered => ConnectError::Misuse("closed after the answer"),
            State::Failed(e) => e.clone(),
        }
    }

    /// The bytes buffered now (at most [`MAX_HEAD_BYTES`] + 1).
    pub(crate) fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    fn feed(&mut self, mut input: &[u8]) -> Result<Option<ConnectOutcome>, ConnectError> {
        loop {
            // Room for one byte beyond the budget: that byte proves the head too large.
            let allowed = MAX_HEAD_BYTES.saturating_sub(self.consumed);
            let room = allowed.saturating_add(1).saturating_sub(self.buf.len());
            let (now, later) = input.split_at(room.min(input.len()));
            self.buf.extend_from_slice(now);
            input = later;

            check_http_prefix(&self.buf)?;
            let Some(end) = self.find_end()? else {
                if self.buf.len() > allowed {
                    return Err(ConnectError::HeadTooLarge {
                        limit: MAX_HEAD_BYTES,
                    });
                }
                // Everything fitted (else the buffer would be over the budget): read more.
                return Ok(None);
            };
            if end > allowed {
                return Err(ConnectError::HeadTooLarge {
                    limit: MAX_HEAD_BYTES,
                });
            }
            let head = parse_head(self.buf.get(..end).unwrap_or_default())?;
            let head_bytes = self.consumed.saturating_add(end);
            match head.status {
                0..=99 => {
                    return Err(ConnectError::MalformedHead {
                        reason: "status code below 100",
                    })
                }
                101 => return Err(ConnectError::SwitchingProtocols),
                100..=199 => {
                    // An interim answer: the next head starts right after it.
                    self.buf.drain(..end);
                    self.consumed = head_bytes;
                    self.scan = 0;
                    self.line_checked = false;
                }
                200..=299 => {
                    let after = self
                        .buf
                        .len()
                        .saturating_sub(end)
                        .saturating_add(input.len());
                    if after > 0 {
                        return Err(ConnectError::BodyAfterEstablished {
                            status: head.status,
                            bytes: after,
                        });
                    }
                    return Ok(Some(ConnectOutcome::Established {
                        status: head.status,
                        head_bytes,
                    }));
                }
                status => {
                    let (realm, schemes) = if status == 407 {
                        challenges(head.proxy_authenticate.iter().map(String::as_str))
                    } else {
                        (None, Vec::new())
                    };
                    return Ok(Some(ConnectOutcome::Refused {
                        status,
                        reason: sanitize(&head.reason),
                        realm,
                        schemes,
                    }));
                }
            }
        }
    }

    /// The end of the head (just past its empty line) if it has arrived: a LF preceded by LF or
    /// by LF CR. On the way, the status line is checked once its LF is in, so a malformed one
    /// fails before the head ends. Each byte is looked at once, when it arrives.
    fn find_end(&mut self) -> Result<Option<usize>, ConnectError> {
        for i in self.scan..self.buf.len() {
            if self.buf.get(i) != Some(&b'\n') {
                continue;
            }
            if !self.line_checked {
                check_status_line(self.buf.get(..=i).unwrap_or_default())?;
                self.line_checked = true;
            }
            let prev = i.checked_sub(1).and_then(|j| self.buf.get(j));
            let prev2 = i.checked_sub(2).and_then(|j| self.buf.get(j));
            if prev == Some(&b'\n') || (prev == Some(&b'\r') && prev2 == Some(&b'\n')) {
                return Ok(Some(i + 1));
            }
        }
        self.scan = self.buf.len();
        Ok(None)
    }
}

/// The head's parts this decoder uses.
struct Head {
    status: u16,
    reason: String,
    proxy_authenticate: Vec<String>,
}

/// Rejects an answer whose first bytes are not `HTTP/`, as soon as they show it.
fn check_http_prefix(buf: &[u8]) -> Result<(), ConnectError> {
    const PREFIX: &[u8] = b"HTTP/";
    let n = buf.len().min(PREFIX.len());
    if buf.get(..n) == PREFIX.get(..n) {
        return Ok(());
    }
    Err(ConnectError::NotHttp {
        start: escape(buf.get(..buf.len().min(QUOTE_MAX)).unwrap_or_default()),
    })
}

/// Runs httparse over the status line alone, so a malformed one fails before the head ends.
fn check_status_line(line: &[u8]) -> Result<(), ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; 1];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(line) {
        Ok(_) => Ok(()),
        Err(e) => Err(ConnectError::MalformedHead {
            reason: httparse_reason(e),
        }),
    }
}

/// Parses a whole head (ending with its empty line).
fn parse_head(bytes: &[u8]) -> Result<Head, ConnectError> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let mut config = httparse::ParserConfig::default();
    config.allow_obsolete_multiline_headers_in_responses(true);
    match config.parse_response(&mut resp, bytes) {
        Ok(httparse::Status::Complete(_)) => Ok(Head {
            status: resp.code.unwrap_or(0),
            reason: raw_reason(bytes),
            proxy_authenticate: resp
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("proxy-authenticate"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .collect(),
        }),
        Ok(httparse::Status::Partial) => Err(ConnectError::MalformedHead {
            reason: "the head does not end at its empty line",
        }),
        Err(httparse::Error::TooManyHeaders) => {
            Err(ConnectError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(e) => Err(ConnectError::MalformedHead {
            reason: httparse_reason(e),
        }),
    }
}

/// The reason phrase of a status line httparse accepted, from the bytes themselves: httparse
/// gives an empty one when it has bytes beyond ASCII (obs-text), which a proxy's message may.
fn raw_reason(head: &[u8]) -> String {
    let line_end = head
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(head.len());
    let line = head.get(..line_end).unwrap_or_default();
    // `HTTP/1.x NNN reason`: the reason starts after the second space, if any.
    let mut spaces = line
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b' ')
        .map(|(i, _)| i);
    let reason = match (spaces.next(), spaces.next()) {
        (Some(_), Some(second)) => line.get(second + 1..).unwrap_or_default(),
        _ => &[],
    };
    String::from_utf8_lossy(reason).into_owned()
}

/// Printable ASCII as is (backslash and quote escaped), every other byte as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Printable ASCII as is, a tab as a space, any other character as `?`; at most
/// [`MAX_TEXT`] characters.
fn sanitize(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT)
        .map(|c| match c {
            ' '..='~' => c,
            '\t' => ' ',
            _ => '?',
        })
        .collect()
}

/// The realm of one `Proxy-Authenticate` field value (the first `Basic` challenge's, else the
/// first realm given), sanitized as in [`ConnectOutcome::Refused`]: for a `407` answering an
/// absolute-form request, which comes back as an ordinary response.
pub(crate) fn realm_of(value: &str) -> Option<String> {
    challenges(std::iter::once(value)).0
}

/// The realm and the schemes of `Proxy-Authenticate` field values (RFC 9110 §11.6.1:
/// `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, several challenges in one
/// field separated by commas, or in several fields). Tolerant: what does not parse is skipped.
fn challenges<'a>(values: impl Iterator<Item = &'a str>) -> (Option<String>, Vec<String>) {
    // (scheme, realm) of each challenge, in order.
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    for value in values {
        let s = value.as_bytes();
        let mut pos = 0;
        // A word after a comma (or at the field's start) not followed by '=' starts a challenge;
        // after a scheme, such a word is its token68.
        let mut after_comma = true;
        // Whether this field's current challenge is `found`'s last one.
        let mut in_challenge = false;
        while pos < s.len() {
            pos = skip_ws(s, pos);
            let Some(&c) = s.get(pos) else { break };
            match c {
                b',' => {
                    after_comma = true;
                    pos += 1;
                    continue;
                }
                b'=' => {
                    pos += 1;
                    continue;
                }
                b'"' => {
                    pos = quoted(s, pos).1;
                    continue;
                }
                _ => {}
            }
            let start = pos;
            while pos < s.len() && !matches!(s[pos], b' ' | b'\t' | b',' | b'=' | b'"') {
                pos += 1;
            }
            let word = String::from_utf8_lossy(&s[start..pos]);
            let after_word = skip_ws(s, pos);
            if s.get(after_word) == Some(&b'=') {
                // `name = value`, or a token68 ending in '=' padding.
                let value_at = skip_ws(s, after_word + 1);
                let param_value = match s.get(value_at) {
                    Some(b'"') => {
                        let (text, next) = quoted(s, value_at);
                        pos = next;
                        Some(text)
                    }
                    Some(&b) if !matches!(b, b'=' | b',') => {
                        let mut end = value_at;
                        while end < s.len() && !matches!(s[end], b' ' | b'\t' | b',') {
                            end += 1;
                        }
                        pos = end;
                        Some(String::from_utf8_lossy(&s[value_at..end]).into_owned())
                    }
                    _ => {
                        // token68 padding: skip the '='s.
                        pos = after_word;
                        while s.get(pos) == Some(&b'=') {
                            pos += 1;
                        }
                        None
                    }
                };
                if let (Some(v), true) = (param_value, in_challenge) {
                    if word.eq_ignore_ascii_case("realm") {
                        if let Some((_, realm @ None)) = found.last_mut() {
                            *realm = Some(v);
                        }
                    }
                }
                after_comma = false;
            } else {
                pos = after_word;
                if after_comma || !in_challenge {
                    found.push((word.into_owned(), None));
                    in_challenge = true;
                }
                after_comma = false;
            }
        }
    }
    let realm = found
        .iter()
        .find(|(scheme, realm)| scheme.eq_ignore_ascii_case("basic") && realm.is_some())
        .or_else(|| found.iter().find(|(_, realm)| realm.is_some()))
        .and_then(|(_, realm)| realm.as_deref())
        .map(sanitize);
    let mut schemes: Vec<String> = Vec::new();
    for (scheme, _) in &found {
        if schemes.len() == MAX_SCHEMES {
            break;
        }
        let scheme = sanitize(scheme);
        if !schemes.iter().any(|s| s.eq_ignore_ascii_case(&scheme)) {
            schemes.push(scheme);
        }
    }
    (realm, schemes)
}

/// Skips spaces and tabs.
fn skip_ws(s: &[u8], mut pos: usize) -> usize {
    while matches!(s.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

/// The text of the quoted string starting at `s[at]` (a `"`), backslash escapes undone, and
/// where it ends; an unterminated one runs to the end.
fn quoted(s: &[u8], at: usize) -> (String, usize) {
    let mut text = Vec::new();
    let mut pos = at + 1;
    while let Some(&b) = s.get(pos) {
        pos += 1;
        match b {
            b'"' => break,
            b'\\' => {
                if let Some(&escaped) = s.get(pos) {
                    text.push(escaped);
                    pos += 1;
                }
            }
            _ => text.push(b),
        }
    }
    (String::from_utf8_lossy(&text).into_owned(), pos)
}

#[cfg(test)]
mod tests;
