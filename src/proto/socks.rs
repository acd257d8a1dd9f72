//! The client's side of a SOCKS handshake — SOCKS5 (RFC 1928) with username/password
//! authentication (RFC 1929), SOCKS4 and SOCKS4a — as a sans-IO state machine.
//!
//! # Why a state machine
//!
//! A SOCKS handshake is a short conversation (greeting, method choice, credentials, their
//! verdict, the `CONNECT` request, its reply) whose every answer a hostile or misconfigured proxy
//! can get wrong: an HTTP proxy answering `HTTP/1.1 400` to a greeting, a SOCKS4-only server
//! answering a SOCKS5 one, a refusal, a reply cut short. Kept apart from the socket, each of those
//! is a unit test over a byte string split at every position, and a fuzz target
//! (`fuzz/fuzz_targets/proxy_replies.rs`); the async driver in `transport/` only moves bytes and
//! reads the clock around them (the proxy's steps are timed there, not here).
//!
//! # Use
//!
//! [`SocksHandshake::new`] checks the inputs (an invalid one is an error before any byte is
//! sent); [`start`](SocksHandshake::start) gives the first bytes to write; each read from the
//! proxy goes to [`receive`](SocksHandshake::receive), which says what to do next: read more,
//! write these bytes then read more, or the tunnel is open (with the bytes that followed the
//! proxy's reply, which belong to the tunnel). If the proxy closes the connection first,
//! [`closed`](SocksHandshake::closed) says what that means.
//!
//! # Rules
//!
//! - Input arrives split anywhere; the outcome does not depend on the split, with one exception:
//!   a proxy cannot answer a request it has not been sent, so bytes that follow a reply the
//!   client must answer (the method choice, the RFC 1929 verdict) in the same read are a
//!   protocol violation ([`SocksError::EarlyBytes`]), while one byte per read would take them as
//!   the next reply.
//! - A refusal is reported as soon as its code byte arrives: some proxies close right after it
//!   without the rest of the reply.
//! - Buffered input is bounded by the longest reply (SOCKS5: 4 + 1 + 255 + 2 bytes); bytes after
//!   the final reply are the caller's ([`SocksStep::Done`]'s `leftover`), never buffered here.
//! - Errors are sticky: after one, every [`receive`](SocksHandshake::receive) returns it again.
//! - No credential appears in an error, in `Debug` output or anywhere but the bytes to send.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest SOCKS5 `CONNECT` reply: VER REP RSV ATYP, a length-prefixed name of up to 255
/// bytes, the port.
const MAX_REPLY: usize = 4 + 1 + 255 + 2;

/// Which SOCKS the proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocksVersion {
    /// SOCKS4: IPv4 addresses only, resolved by the client.
    V4,
    /// SOCKS4a: SOCKS4 that can also send a host name for the proxy to resolve.
    V4a,
    /// SOCKS5 (RFC 1928).
    V5,
}

impl SocksVersion {
    /// The protocol's name as the error sentences write it: `SOCKS4`, `SOCKS4a`, `SOCKS5`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SocksVersion::V4 => "SOCKS4",
            SocksVersion::V4a => "SOCKS4a",
            SocksVersion::V5 => "SOCKS5",
        }
    }
}

/// Where the tunnel goes: an address we resolved, or a name the proxy resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocksTarget<'a> {
    /// An address resolved by the client (`socks5://`, `socks4://`).
    Addr(SocketAddr),
    /// A host name and port for the proxy to resolve (`socks5h://`, `socks4a://`).
    Name(&'a str, u16),
}

/// Credentials for the proxy: RFC 1929's user name and password for SOCKS5; SOCKS4 and 4a send
/// the user name as the request's user id and have no password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocksAuth<'a> {
    /// The user name (SOCKS4: the user id).
    pub user: &'a str,
    /// The password (unused by SOCKS4 and 4a).
    pub password: &'a str,
}

impl fmt::Debug for SocksAuth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SocksAuth { .. }")
    }
}

/// The authentication method a SOCKS5 proxy chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocksAuthMethod {
    /// `0x00`: no authentication.
    None,
    /// `0x02`: username/password (RFC 1929).
    UsernamePassword,
}

impl SocksAuthMethod {
    /// `"none"` or `"username/password"`, as the profile's extensions name it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SocksAuthMethod::None => "none",
            SocksAuthMethod::UsernamePassword => "username/password",
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SocksStep {
    /// Read more.
    NeedMore,
    /// Write these bytes, then read more (SOCKS5: the username/password request after the
    /// method choice, the `CONNECT` request after the method choice or the authentication).
    Send(Vec<u8>),
    /// The tunnel is open.
    Done {
        /// The address the proxy reports (`BND.ADDR:BND.PORT`; IPv6 in brackets; a domain-typed
        /// one kept as text, bytes other than printable ASCII escaped as `\xNN`).
        bound: String,
        /// Bytes the proxy sent after its reply (data from the origin that arrived early): the
        /// driver hands them to the next reader, it does not drop them.
        leftover: Vec<u8>,
    },
}

/// How the caller maps a [`SocksError`] to an error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocksErrorCategory {
    /// The proxy refused the tunnel with a reply code (`proxy tunnel failed`).
    Refused,
    /// The proxy wants credentials, or refused the ones given (`proxy authentication required`).
    Auth,
    /// The proxy's answer breaks the protocol, or it closed the connection during the handshake
    /// (`invalid proxy response`). Also the driver's misuse of the machine ([`SocksError::Misuse`]),
    /// which a correct driver never sees.
    Protocol,
    /// The inputs cannot be sent in this protocol (`invalid proxy`, or the upload's own input).
    Input,
}

/// A reply the client waits for, as error sentences name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocksReply {
    /// SOCKS5: the method choice answering the greeting.
    MethodChoice,
    /// SOCKS5: the RFC 1929 verdict on the user name and password.
    AuthVerdict,
    /// SOCKS5: the reply to `CONNECT`.
    Connect5,
    /// SOCKS4/4a: the reply to `CONNECT`.
    Connect4,
}

impl SocksReply {
    fn describe(self, version: SocksVersion) -> String {
        match self {
            SocksReply::MethodChoice => "its reply to our SOCKS5 greeting".to_string(),
            SocksReply::AuthVerdict => {
                "its reply to our user name and password (RFC 1929)".to_string()
            }
            SocksReply::Connect5 | SocksReply::Connect4 => {
                format!("its reply to our {} CONNECT request", version.as_str())
            }
        }
    }
}

/// Why a SOCKS handshake failed. `Display` is a sentence for the error's detail; it never
/// contains a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SocksError {
    // ---- refused (category Refused)
    /// The proxy refused the tunnel: a SOCKS5 reply code other than 0, or a SOCKS4 one other
    /// than 90.
    Refused {
        /// SOCKS4 and 4a share their reply codes; the sentence names the version used.
        version: SocksVersion,
        /// The reply code as sent.
        code: u8,
    },
    // ---- authentication (category Auth)
    /// SOCKS5: the proxy accepts none of the methods offered (method `0xFF`).
    NoAcceptableMethod {
        /// Whether username/password was offered besides "no authentication".
        offered_credentials: bool,
    },
    /// SOCKS5: the proxy chose username/password, but no credentials were given (so only "no
    /// authentication" was offered).
    CredentialsRequired,
    /// SOCKS5: the proxy refused the user name and password (RFC 1929 status other than 0).
    AuthRejected {
        /// The status byte.
        status: u8,
    },
    // ---- protocol violations (category Protocol)
    /// SOCKS5: the proxy chose a method other than those offered (and not `0xFF`).
    UnofferedMethod {
        /// The method byte.
        method: u8,
    },
    /// A reply's version byte is not the protocol's (`0x05`, RFC 1929's `0x01`, SOCKS4's `0x00`).
    WrongVersion {
        /// Which reply.
        reply: SocksReply,
        /// The version byte the protocol requires.
        expected: u8,
        /// The byte received.
        got: u8,
    },
    /// The proxy answered in HTTP (its reply starts with `HTTP/`): an HTTP proxy.
    NotSocks,
    /// SOCKS5: the `CONNECT` reply's reserved byte is not zero.
    ReservedNotZero {
        /// The byte received.
        got: u8,
    },
    /// SOCKS5: the `CONNECT` reply's address type is none of 1, 3, 4.
    UnknownAddressType {
        /// The address type received.
        atyp: u8,
    },
    /// The proxy sent bytes after a reply the client had yet to answer, in the same read: it
    /// cannot have received the request they would answer.
    EarlyBytes {
        /// Which reply they followed.
        after: SocksReply,
        /// How many bytes followed it.
        count: usize,
    },
    /// The proxy closed the connection before its reply was complete.
    Closed {
        /// Which reply was awaited.
        during: SocksReply,
        /// How many bytes of it had arrived.
        received: usize,
    },
    /// The driver used the machine out of order (`receive` before `start` or after the tunnel
    /// was open). Never the proxy's doing.
    Misuse(&'static str),
    // ---- bad input (category Input)
    /// SOCKS4 can reach IPv4 addresses only.
    Socks4Ipv6,
    /// SOCKS4 cannot send a host name (SOCKS4a can).
    Socks4Name,
    /// SOCKS4a cannot send an IPv6 address.
    Socks4aIpv6,
    /// The host name is empty or longer than 255 bytes.
    NameLength {
        /// The protocol in use.
        version: SocksVersion,
        /// The name's length in bytes.
        len: usize,
    },
    /// SOCKS4a: the host name contains NUL, its terminator.
    NameNul,
    /// The user name is too long (all versions) or empty (SOCKS5).
    UserLength {
        /// The protocol in use.
        version: SocksVersion,
        /// The user name's length in bytes.
        len: usize,
    },
    /// SOCKS4/4a: the user name (the user id) contains NUL, its terminator.
    UserNul,
    /// SOCKS5: the password is empty or longer than 255 bytes.
    PasswordLength {
        /// The password's length in bytes.
        len: usize,
    },
}

impl SocksError {
    /// How the caller maps this error to an error kind.
    pub(crate) fn category(&self) -> SocksErrorCategory {
        match self {
            SocksError::Refused { .. } => SocksErrorCategory::Refused,
            SocksError::NoAcceptableMethod { .. }
            | SocksError::CredentialsRequired
            | SocksError::AuthRejected { .. } => SocksErrorCategory::Auth,
            SocksError::UnofferedMethod { .. }
            | SocksError::WrongVersion { .. }
            | SocksError::NotSocks
            | SocksError::ReservedNotZero { .. }
            | SocksError::UnknownAddressType { .. }
            | SocksError::EarlyBytes { .. }
            | SocksError::Closed { .. }
            | SocksError::Misuse(_) => SocksErrorCategory::Protocol,
            SocksError::Socks4Ipv6
            | SocksError::Socks4Name
            | SocksError::Socks4aIpv6
            | SocksError::NameLength { .. }
            | SocksError::NameNul
            | SocksError::UserLength { .. }
            | SocksError::UserNul
            | SocksError::PasswordLength { .. } => SocksErrorCategory::Input,
        }
    }

    /// The proxy's reply code, for a refusal.
    pub(crate) fn reply_code(&self) -> Option<u8> {
        match self {
            SocksError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The name RFC 1928 gives a SOCKS5 reply code.
fn socks5_reply_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => return None,
    })
}

/// The meaning SOCKS4 gives a reply code.
fn socks4_reply_name(code: u8) -> Option<&'static str> {
    Some(match code {
        91 => "request rejected or failed",
        92 => "rejected: the proxy cannot reach identd on the client",
        93 => "rejected: identd user id mismatch",
        _ => return None,
    })
}

/// The name of a SOCKS5 authentication method (IANA's registry), for errors.
fn method_name(method: u8) -> &'static str {
    match method {
        0x00 => "no authentication",
        0x01 => "GSSAPI",
        0x02 => "username/password",
        0x03 => "CHAP",
        0x05 => "challenge-response",
        0x06 => "SSL",
        0x07 => "NDS",
        0x08 => "multi-authentication framework",
        0x09 => "JSON parameter block",
        0x80..=0xFE => "a private method",
        _ => "an unassigned method",
    }
}

impl fmt::Display for SocksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksError::Refused { version, code } => {
                let v = version.as_str();
                let name = match version {
                    SocksVersion::V5 => socks5_reply_name(*code),
                    SocksVersion::V4 | SocksVersion::V4a => socks4_reply_name(*code),
                };
                match (name, version) {
                    (Some(name), _) => write!(
                        f,
                        "the {v} proxy refused the tunnel: {name} (reply code {code})"
                    ),
                    (None, SocksVersion::V5) => write!(
                        f,
                        "the {v} proxy refused the tunnel: unassigned reply code 0x{code:02x}"
                    ),
                    (None, _) => write!(
                        f,
                        "the {v} proxy refused the tunnel: reply code {code}, which SOCKS4 \
                         does not define"
                    ),
                }
            }
            SocksError::NoAcceptableMethod {
                offered_credentials,
            } => {
                if *offered_credentials {
                    f.write_str(
                        "the SOCKS5 proxy accepts none of the authentication methods we offered \
                         (no authentication, username/password)",
                    )
                } else {
                    f.write_str(
                        "the SOCKS5 proxy accepts none of the authentication methods we offered \
                         (no authentication only: no user name and password were given)",
                    )
                }
            }
            SocksError::CredentialsRequired => f.write_str(
                "the SOCKS5 proxy asks for a user name and password, and none were given",
            ),
            SocksError::AuthRejected { status } => write!(
                f,
                "the SOCKS5 proxy refused the user name and password (RFC 1929 status \
                 0x{status:02x})"
            ),
            SocksError::UnofferedMethod { method } => write!(
                f,
                "the SOCKS5 proxy chose authentication method 0x{method:02x} ({}), which we \
                 did not offer",
                method_name(*method)
            ),
            SocksError::WrongVersion {
                reply,
                expected,
                got,
            } => {
                let version = match reply {
                    SocksReply::Connect4 => SocksVersion::V4,
                    _ => SocksVersion::V5,
                };
                write!(
                    f,
                    "the proxy's version byte in {} is 0x{got:02x}, not 0x{expected:02x}",
                    reply.describe(version)
                )?;
                match (reply, got) {
                    (SocksReply::MethodChoice | SocksReply::Connect5, 0x00) => {
                        f.write_str(" (a SOCKS4 reply: the proxy may speak only SOCKS4)")
                    }
                    (SocksReply::Connect4, 0x05) => {
                        f.write_str(" (a SOCKS5 reply: the proxy may speak only SOCKS5)")
                    }
                    (SocksReply::AuthVerdict, 0x05) => f.write_str(
                        " (RFC 1929's version is 0x01; the proxy answered with SOCKS5's)",
                    ),
                    _ => Ok(()),
                }
            }
            SocksError::NotSocks => {
                f.write_str("the proxy answered in HTTP, not SOCKS (it looks like an HTTP proxy)")
            }
            SocksError::ReservedNotZero { got } => write!(
                f,
                "the reserved byte of the SOCKS5 proxy's CONNECT reply is 0x{got:02x}, not 0x00"
            ),
            SocksError::UnknownAddressType { atyp } => write!(
                f,
                "the SOCKS5 proxy's CONNECT reply has address type 0x{atyp:02x}, none of IPv4 \
                 (1), domain name (3), IPv6 (4)"
            ),
            SocksError::EarlyBytes { after, count } => {
                let next = match after {
                    SocksReply::MethodChoice => "our next request",
                    _ => "our CONNECT request",
                };
                write!(
                    f,
                    "the SOCKS5 proxy sent {count} byte{} after {}, before it had {next}",
                    plural(*count),
                    after.describe(SocksVersion::V5)
                )
            }
            SocksError::Closed { during, received } => {
                let version = match during {
                    SocksReply::Connect4 => SocksVersion::V4,
                    _ => SocksVersion::V5,
                };
                if *received == 0 {
                    write!(
                        f,
                        "the proxy closed the connection before {}",
                        during.describe(version)
                    )
                } else {
                    write!(
                        f,
                        "the proxy closed the connection after {received} byte{} of {}",
                        plural(*received),
                        during.describe(version)
                    )
                }
            }
            SocksError::Misuse(what) => write!(f, "SOCKS handshake used out of order: {what}"),
            SocksError::Socks4Ipv6 => {
                f.write_str("SOCKS4 can reach IPv4 addresses only, and the target is IPv6")
            }
            SocksError::Socks4Name => {
                f.write_str("SOCKS4 cannot send a host name for the proxy to resolve (SOCKS4a can)")
            }
            SocksError::Socks4aIpv6 => f.write_str("SOCKS4a cannot send an IPv6 address"),
            SocksError::NameLength { version, len } => write!(
                f,
                "the host name is {len} byte{} long; {} allows 1 to 255",
                plural(*len),
                version.as_str()
            ),
            SocksError::NameNul => {
                f.write_str("the host name contains a NUL byte, which SOCKS4a cannot send")
            }
            SocksError::UserLength { version, len } => match version {
                SocksVersion::V5 => write!(
                    f,
                    "the proxy user name is {len} byte{} long; SOCKS5 (RFC 1929) allows 1 to \
                     255",
                    plural(*len)
                ),
                _ => write!(
                    f,
                    "the proxy user name is {len} bytes long; {} allows at most 255 in its user id",
                    version.as_str()
                ),
            },
            SocksError::UserNul => f.write_str(
                "the proxy user name contains a NUL byte, which SOCKS4 cannot send in its user id",
            ),
            SocksError::PasswordLength { len } => write!(
                f,
                "the proxy password is {len} byte{} long; SOCKS5 (RFC 1929) allows 1 to 255",
                plural(*len)
            ),
        }
    }
}

impl std::error::Error for SocksError {}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Where the handshake is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// `start` not called yet.
    New,
    /// Waiting for this reply.
    Awaiting(SocksReply),
    /// The tunnel is open.
    Done,
    /// The handshake failed (sticky).
    Failed(SocksError),
}

/// What the bytes buffered so far make of the awaited reply.
enum Parse {
    /// Not enough bytes to decide.
    Incomplete,
    /// The reply is complete (it is the whole buffer).
    Complete,
}

/// One SOCKS handshake, client side (see the module docs).
pub(crate) struct SocksHandshake {
    version: SocksVersion,
    /// The first bytes to write: the SOCKS5 greeting, or the whole SOCKS4/4a request.
    first: Vec<u8>,
    /// SOCKS5: the `CONNECT` request.
    connect: Vec<u8>,
    /// SOCKS5 with credentials: the RFC 1929 request (it holds the password).
    auth_request: Option<Vec<u8>>,
    state: State,
    /// The awaited reply's bytes so far (at most [`MAX_REPLY`]).
    buf: Vec<u8>,
    method: Option<SocksAuthMethod>,
}

impl fmt::Debug for SocksHandshake {
    // By hand: the RFC 1929 request holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocksHandshake")
            .field("version", &self.version)
            .field("state", &self.state)
            .field("buffered", &self.buf.len())
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl SocksHandshake {
    /// Validates the inputs and prepares the requests. SOCKS4: an IPv4 address only, a user id
    /// (the user name; the password is not used) of at most 255 bytes without NUL. SOCKS4a: as
    /// SOCKS4, or a host name of 1 to 255 bytes without NUL (an IPv4 address goes as in SOCKS4).
    /// SOCKS5: a host name of 1 to 255 bytes; a user name and a password of 1 to 255 bytes each
    /// (RFC 1929). An invalid input is an error before any byte is sent.
    pub(crate) fn new(
        version: SocksVersion,
        target: SocksTarget<'_>,
        auth: Option<SocksAuth<'_>>,
    ) -> Result<SocksHandshake, SocksError> {
        let (first, connect, auth_request) = match version {
            SocksVersion::V4 | SocksVersion::V4a => {
                (socks4_request(version, target, auth)?, Vec::new(), None)
            }
            SocksVersion::V5 => {
                let connect = socks5_request(target)?;
                let auth_request = auth.map(rfc1929_request).transpose()?;
                let greeting = if auth_request.is_some() {
                    vec![0x05, 0x02, 0x00, 0x02]
                } else {
                    vec![0x05, 0x01, 0x00]
                };
                (greeting, connect, auth_request)
            }
        };
        Ok(SocksHandshake {
            version,
            first,
            connect,
            auth_request,
            state: State::New,
            buf: Vec::new(),
            method: None,
        })
    }

    /// The bytes to write first (SOCKS5: the greeting offering "no authentication" and, with
    /// credentials, username/password; SOCKS4/4a: the whole `CONNECT` request, the user name as
    /// the user id). A second call returns nothing.
    pub(crate) fn start(&mut self) -> Vec<u8> {
        if self.state != State::New {
            return Vec::new();
        }
        self.state = State::Awaiting(match self.version {
            SocksVersion::V5 => SocksReply::MethodChoice,
            SocksVersion::V4 | SocksVersion::V4a => SocksReply::Connect4,
        });
        self.buf.reserve(MAX_REPLY);
        std::mem::take(&mut self.first)
    }

    /// Feeds bytes read from the proxy (split anywhere, one byte at a time included) and says
    /// what to do next. After an error, returns that error again; after [`SocksStep::Done`], or
    /// before [`start`](Self::start), returns [`SocksError::Misuse`].
    pub(crate) fn receive(&mut self, bytes: &[u8]) -> Result<SocksStep, SocksError> {
        let reply = match &self.state {
            State::Awaiting(reply) => *reply,
            State::New => return Err(SocksError::Misuse("bytes received before start")),
            State::Done => {
                return Err(SocksError::Misuse("bytes received after the tunnel opened"))
            }
            State::Failed(e) => return Err(e.clone()),
        };
        let result = self.feed(reply, bytes);
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
            self.buf = Vec::new();
        }
        result
    }

    /// The proxy closed the connection (EOF) before the tunnel was open: why that is an error
    /// now. After an error, that error; after [`SocksStep::Done`], [`SocksError::Misuse`] (the
    /// tunnel's end is the caller's business).
    pub(crate) fn closed(&mut self) -> SocksError {
        let error = match &self.state {
            State::Awaiting(reply) => SocksError::Closed {
                during: *reply,
                received: self.buf.len(),
            },
            State::New => SocksError::Closed {
                during: match self.version {
                    SocksVersion::V5 => SocksReply::MethodChoice,
                    _ => SocksReply::Connect4,
                },
                received: 0,
            },
            State::Done => return SocksError::Misuse("closed after the tunnel opened"),
            State::Failed(e) => return e.clone(),
        };
        self.state = State::Failed(error.clone());
        self.buf = Vec::new();
        error
    }

    /// The authentication method the SOCKS5 proxy chose, once known (`None` for SOCKS4/4a).
    pub(crate) fn auth_method(&self) -> Option<SocksAuthMethod> {
        self.method
    }

    /// The bytes buffered now: part of the awaited reply (at most 262, SOCKS5's longest).
    pub(crate) fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Takes bytes one at a time into the awaited reply until it is decided.
    fn feed(&mut self, reply: SocksReply, bytes: &[u8]) -> Result<SocksStep, SocksError> {
        let mut rest = bytes;
        while let Some((&byte, tail)) = rest.split_first() {
            rest = tail;
            self.buf.push(byte);
            if let Parse::Incomplete = self.parse(reply)? {
                continue;
            }
            let completed = self.complete(reply)?;
            self.buf.clear();
            return match completed {
                Completed::Next { send, awaiting } => {
                    // The proxy cannot answer a request it has not been sent yet.
                    if !rest.is_empty() {
                        return Err(SocksError::EarlyBytes {
                            after: reply,
                            count: rest.len(),
                        });
                    }
                    self.state = State::Awaiting(awaiting);
                    Ok(SocksStep::Send(send))
                }
                Completed::Done { bound } => {
                    self.state = State::Done;
                    Ok(SocksStep::Done {
                        bound,
                        leftover: rest.to_vec(),
                    })
                }
            };
        }
        Ok(SocksStep::NeedMore)
    }

    /// Whether the buffered bytes make the awaited reply complete, an error, or neither yet.
    /// Called after each byte, so the buffer never outgrows the reply (nor [`MAX_REPLY`]).
    fn parse(&self, reply: SocksReply) -> Result<Parse, SocksError> {
        let b = self.buf.as_slice();
        let expected = match reply {
            SocksReply::MethodChoice | SocksReply::Connect5 => 0x05,
            SocksReply::AuthVerdict => 0x01,
            SocksReply::Connect4 => 0x00,
        };
        if !version_ok(b, reply, expected)? {
            return Ok(Parse::Incomplete);
        }
        let total = match reply {
            SocksReply::MethodChoice => 2,
            SocksReply::AuthVerdict => {
                if let Some(&status) = b.get(1) {
                    if status != 0 {
                        return Err(SocksError::AuthRejected { status });
                    }
                }
                2
            }
            SocksReply::Connect4 => {
                if let Some(&code) = b.get(1) {
                    if code != 90 {
                        return Err(SocksError::Refused {
                            version: self.version,
                            code,
                        });
                    }
                }
                8
            }
            SocksReply::Connect5 => {
                if let Some(&code) = b.get(1) {
                    if code != 0 {
                        return Err(SocksError::Refused {
                            version: SocksVersion::V5,
                            code,
                        });
                    }
                }
                if let Some(&got) = b.get(2) {
                    if got != 0 {
                        return Err(SocksError::ReservedNotZero { got });
                    }
                }
                match b.get(3) {
                    None => 4,
                    Some(1) => 4 + 4 + 2,
                    Some(4) => 4 + 16 + 2,
                    Some(3) => match b.get(4) {
                        None => 5,
                        Some(&len) => 4 + 1 + usize::from(len) + 2,
                    },
                    Some(&atyp) => return Err(SocksError::UnknownAddressType { atyp }),
                }
            }
        };
        Ok(if b.len() >= total {
            Parse::Complete
        } else {
            Parse::Incomplete
        })
    }

    /// What a complete reply (the whole buffer) leads to.
    fn complete(&mut self, reply: SocksReply) -> Result<Completed, SocksError> {
        let b = self.buf.as_slice();
        match reply {
            SocksReply::MethodChoice => match b.get(1).copied().unwrap_or(0xFF) {
                0x00 => {
                    self.method = Some(SocksAuthMethod::None);
                    Ok(Completed::Next {
                        send: std::mem::take(&mut self.connect),
                        awaiting: SocksReply::Connect5,
                    })
                }
                0x02 => match self.auth_request.take() {
                    Some(send) => {
                        self.method = Some(SocksAuthMethod::UsernamePassword);
                        Ok(Completed::Next {
                            send,
                            awaiting: SocksReply::AuthVerdict,
                        })
                    }
                    None => Err(SocksError::CredentialsRequired),
                },
                0xFF => Err(SocksError::NoAcceptableMethod {
                    offered_credentials: self.auth_request.is_some(),
                }),
                method => Err(SocksError::UnofferedMethod { method }),
            },
            SocksReply::AuthVerdict => Ok(Completed::Next {
                send: std::mem::take(&mut self.connect),
                awaiting: SocksReply::Connect5,
            }),
            SocksReply::Connect5 => Ok(Completed::Done {
                bound: socks5_bound(b),
            }),
            SocksReply::Connect4 => Ok(Completed::Done {
                bound: socks4_bound(b),
            }),
        }
    }
}

/// What a complete reply leads to.
enum Completed {
    /// Write `send`, then wait for `awaiting`.
    Next { send: Vec<u8>, awaiting: SocksReply },
    /// The tunnel is open.
    Done { bound: String },
}

/// Checks a reply's first byte: `Ok(true)` if it is `expected`, `Ok(false)` while the bytes so
/// far could be the start of `HTTP/` (an HTTP proxy's answer, told apart in five bytes).
fn version_ok(b: &[u8], reply: SocksReply, expected: u8) -> Result<bool, SocksError> {
    const HTTP: &[u8] = b"HTTP/";
    let Some(&got) = b.first() else {
        return Ok(false);
    };
    if got == expected {
        return Ok(true);
    }
    let n = b.len().min(HTTP.len());
    if b.get(..n) == HTTP.get(..n) {
        return if n == HTTP.len() {
            Err(SocksError::NotSocks)
        } else {
            Ok(false)
        };
    }
    Err(SocksError::WrongVersion {
        reply,
        expected,
        got,
    })
}

/// `BND.ADDR:BND.PORT` of a complete SOCKS5 reply.
fn socks5_bound(b: &[u8]) -> String {
    let port = |at: usize| -> u16 {
        match b.get(at..at + 2) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        }
    };
    match b.get(3) {
        Some(1) => {
            let ip = b
                .get(4..8)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(Ipv4Addr::from)
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            SocketAddr::new(IpAddr::V4(ip), port(8)).to_string()
        }
        Some(4) => {
            let ip = b
                .get(4..20)
                .and_then(|s| <[u8; 16]>::try_from(s).ok())
                .map(Ipv6Addr::from)
                .unwrap_or(Ipv6Addr::UNSPECIFIED);
            SocketAddr::new(IpAddr::V6(ip), port(20)).to_string()
        }
        _ => {
            let len = usize::from(b.get(4).copied().unwrap_or(0));
            let name = b.get(5..5 + len).unwrap_or_default();
            format!("{}:{}", escape_bytes(name), port(5 + len))
        }
    }
}

/// `DSTIP:DSTPORT` of a complete SOCKS4 reply.
fn socks4_bound(b: &[u8]) -> String {
    let port = match b.get(2..4) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    };
    let ip = b
        .get(4..8)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(Ipv4Addr::from)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    SocketAddr::new(IpAddr::V4(ip), port).to_string()
}

/// Printable ASCII as is (backslash doubled), every other byte as `\xNN`.
fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The whole SOCKS4 or 4a `CONNECT` request: VN=4 CD=1 DSTPORT DSTIP USERID NUL [HOST NUL].
fn socks4_request(
    version: SocksVersion,
    target: SocksTarget<'_>,
    auth: Option<SocksAuth<'_>>,
) -> Result<Vec<u8>, SocksError> {
    let (ip, port, name) = match target {
        SocksTarget::Addr(addr) => {
            let ip = match addr.ip() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                    Some(ip) => ip,
                    None if version == SocksVersion::V4 => return Err(SocksError::Socks4Ipv6),
                    None => return Err(SocksError::Socks4aIpv6),
                },
            };
            (ip.octets(), addr.port(), None)
        }
        SocksTarget::Name(_, _) if version == SocksVersion::V4 => {
            return Err(SocksError::Socks4Name)
        }
        SocksTarget::Name(name, port) => {
            if name.is_empty() || name.len() > 255 {
                return Err(SocksError::NameLength {
                    version,
                    len: name.len(),
                });
            }
            if name.as_bytes().contains(&0) {
                return Err(SocksError::NameNul);
            }
            // SOCKS4a: DSTIP 0.0.0.x with x non-zero says "the name follows".
            ([0, 0, 0, 1], port, Some(name))
        }
    };
    let user = auth.map_or("", |a| a.user);
    if user.len() > 255 {
        return Err(SocksError::UserLength {
            version,
            len: user.len(),
        });
    }
    if user.as_bytes().contains(&0) {
        return Err(SocksError::UserNul);
    }
    let mut req = Vec::with_capacity(8 + user.len() + 1 + name.map_or(0, |n| n.len() + 1));
    req.extend_from_slice(&[0x04, 0x01]);
    req.extend_from_slice(&port.to_be_bytes());
    req.extend_from_slice(&ip);
    req.extend_from_slice(user.as_bytes());
    req.push(0);
    if let Some(name) = name {
        req.extend_from_slice(name.as_bytes());
        req.push(0);
    }
    Ok(req)
}

/// The SOCKS5 `CONNECT` request: VER=5 CMD=1 RSV=0 ATYP DST.ADDR DST.PORT.
fn socks5_request(target: SocksTarget<'_>) -> Result<Vec<u8>, SocksError> {
    let mut req = vec![0x05, 0x01, 0x00];
    let port = match target {
        SocksTarget::Addr(addr) => {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    req.push(0x01);
                    req.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    req.push(0x04);
                    req.extend_from_slice(&ip.octets());
                }
            }
            addr.port()
        }
        SocksTarget::Name(name, port) => {
            let len = u8::try_from(name.len()).ok().filter(|&len| len > 0).ok_or(
                SocksError::NameLength {
                    version: SocksVersion::V5,
                    len: name.len(),
                },
            )?;
            req.push(0x03);
            req.push(len);
            req.extend_from_slice(name.as_bytes());
            port
        }
    };
    req.extend_from_slice(&port.to_be_bytes());
    Ok(req)
}

/// The RFC 1929 request: VER=1 ULEN UNAME PLEN PASSWD.
fn rfc1929_request(auth: SocksAuth<'_>) -> Result<Vec<u8>, SocksError> {
    let ulen = u8::try_from(auth.user.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or(SocksError::UserLength {
            version: SocksVersion::V5,
            len: auth.user.len(),
        })?;
    let plen = u8::try_from(auth.password.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or(SocksError::PasswordLength {
            len: auth.password.len(),
        })?;
    let mut req = Vec::with_capacity(3 + auth.user.len() + auth.password.len());
    req.push(0x01);
    req.push(ulen);
    req.extend_from_slice(auth.user.as_bytes());
    req.push(plen);
    req.extend_from_slice(auth.password.as_bytes());
    Ok(req)
}

#[cfg(test)]
mod tests;
