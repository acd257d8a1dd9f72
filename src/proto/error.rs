//! Why a response could not be decoded: the one error type of the HTTP/1.x decoders.
//!
//! It lives apart from [`response`](super::response) and the chunked decoder so that both
//! decoders depend on it and not on each other.

use std::fmt;

/// Why a response could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// The status line is not `HTTP/1.x NNN reason`.
    MalformedStatusLine {
        /// What is wrong.
        reason: &'static str,
    },
    /// A header line is malformed (bad name, control character, ...).
    MalformedHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// The head did not end within the decoder's `max_head_bytes` limit.
    HeadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The head has more than the decoder's `max_headers` limit of fields.
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// `Content-Length` is not a decimal number, overflows `u64`, or its
    /// values disagree.
    InvalidContentLength {
        /// What is wrong.
        reason: &'static str,
    },
    /// `Transfer-Encoding` cannot be honoured.
    InvalidTransferEncoding {
        /// What is wrong.
        reason: &'static str,
    },
    /// A chunk size is missing or not hexadecimal.
    InvalidChunkSize,
    /// A chunk size does not fit in 64 bits.
    ChunkSizeOverflow,
    /// Chunk framing is broken: no CRLF where one must be, control bytes
    /// in an extension, an endless size line.
    BadChunkFraming {
        /// What is wrong.
        reason: &'static str,
    },
    /// The trailer section after the last chunk is malformed or too big.
    InvalidTrailers {
        /// What is wrong.
        reason: &'static str,
    },
    /// The server answered 101 Switching Protocols, which we never ask for.
    UnexpectedSwitchingProtocols,
    /// The connection closed before a complete (final) response head.
    IncompleteHead {
        /// Bytes of the unfinished head received (0: none at all).
        received: usize,
    },
    /// The connection closed before the body was complete.
    IncompleteBody {
        /// Body bytes received (decoded, for chunked bodies).
        received: u64,
        /// The `Content-Length`, or `None` for a chunked body.
        expected: Option<u64>,
    },
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::MalformedStatusLine { reason } => {
                write!(f, "malformed response status line: {reason}")
            }
            ProtoError::MalformedHeader { reason } => {
                write!(f, "malformed response header: {reason}")
            }
            ProtoError::HeadTooLarge { limit } => {
                write!(f, "response head larger than the {limit}-byte limit")
            }
            ProtoError::TooManyHeaders { limit } => {
                write!(f, "response head has more than {limit} header fields")
            }
            ProtoError::InvalidContentLength { reason } => {
                write!(f, "invalid Content-Length: {reason}")
            }
            ProtoError::InvalidTransferEncoding { reason } => {
                write!(f, "invalid Transfer-Encoding: {reason}")
            }
            ProtoError::InvalidChunkSize => f.write_str(
                "invalid chunk size: expected hexadecimal digits, then optional \
                 ';' extensions, then CRLF",
            ),
            ProtoError::ChunkSizeOverflow => f.write_str("chunk size does not fit in 64 bits"),
            ProtoError::BadChunkFraming { reason } => {
                write!(f, "bad chunked framing: {reason}")
            }
            ProtoError::InvalidTrailers { reason } => {
                write!(f, "invalid trailer section: {reason}")
            }
            ProtoError::UnexpectedSwitchingProtocols => f.write_str(
                "unexpected 101 Switching Protocols response (no upgrade was requested)",
            ),
            ProtoError::IncompleteHead { received: 0 } => {
                f.write_str("connection closed before the response head")
            }
            ProtoError::IncompleteHead { received } => write!(
                f,
                "connection closed in the middle of the response head \
                 ({received} bytes of it received)"
            ),
            ProtoError::IncompleteBody {
                received,
                expected: Some(len),
            } => write!(
                f,
                "connection closed before the body completed (got {received} of {len} bytes)"
            ),
            ProtoError::IncompleteBody {
                received,
                expected: None,
            } => write!(
                f,
                "connection closed before the chunked body completed \
                 (got {received} body bytes, no last chunk)"
            ),
        }
    }
}

impl std::error::Error for ProtoError {}
