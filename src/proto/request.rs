//! HTTP/1.1 request head encoding and header validation.
//!
//! The encoder is deliberately dumb: it writes what it is given, in the order
//! given, because the driver owns the policy (which headers, in which order,
//! whether to send `Expect: 100-continue`). What the encoder cannot do is
//! protect the message framing from bad input — a header value holding CR LF
//! would let a caller inject headers or a whole second request — so the
//! validators live next to it and the driver runs them on everything that
//! came from a user before building a [`RequestHead`].
//! [`RequestHead::validate`] checks a whole head in one go.
//!
//! The rules are RFC 9110's: a field name is a `token`; a field value may
//! hold visible ASCII, spaces, tabs and bytes ≥ 0x80 (`obs-text`, so UTF-8
//! passes through), but no other control character. Refusing CR, LF and NUL
//! is required for safety; refusing the other controls (and DEL) is
//! stricter than many clients and keeps odd bytes from reaching servers that
//! might treat them as line ends.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// RFC 9110 `tchar`: ``!#$%&'*+-.^_`|~``, digits and letters.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Is `name` an RFC 9110 `token` (one or more `tchar`)? Header names and
/// methods must be.
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_tchar)
}

/// What a [`HeaderError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    Name(String),
    Value(Option<String>),
    Method(String),
    Target(String),
}

/// Why a header (or request line) cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    subject: Subject,
    /// The offending byte, if one byte is to blame.
    byte: Option<u8>,
}

impl HeaderError {
    /// Attaches the header's name to a value error from
    /// [`validate_header_value`], so the message can name the header.
    /// Errors about names, methods and targets are returned unchanged.
    pub fn with_header_name(mut self, name: &str) -> HeaderError {
        if let Subject::Value(n) = &mut self.subject {
            *n = Some(name.to_owned());
        }
        self
    }

    /// The header this error is about, when known.
    pub fn header_name(&self) -> Option<&str> {
        match &self.subject {
            Subject::Name(n) => Some(n),
            Subject::Value(n) => n.as_deref(),
            Subject::Method(_) | Subject::Target(_) => None,
        }
    }

    /// The offending byte, if a single byte is to blame (an empty name or
    /// target has none).
    pub fn offending_byte(&self) -> Option<u8> {
        self.byte
    }
}

/// Writes `s` quoted and escaped, cut to a readable length, for messages.
fn write_quoted_short(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    const MAX_CHARS: usize = 64;
    f.write_str("\"")?;
    for c in s.chars().take(MAX_CHARS) {
        write!(f, "{}", c.escape_debug())?;
    }
    if s.chars().nth(MAX_CHARS).is_some() {
        f.write_str("…")?;
    }
    f.write_str("\"")
}

fn describe_byte(b: u8) -> String {
    match b {
        b'\r' => "a carriage return (CR, 0x0D)".to_owned(),
        b'\n' => "a line feed (LF, 0x0A)".to_owned(),
        0 => "a NUL byte (0x00)".to_owned(),
        b' ' => "a space".to_owned(),
        b'\t' => "a tab".to_owned(),
        0x7f => "a DEL control character (0x7F)".to_owned(),
        b if b < 0x20 => format!("a control character (0x{b:02X})"),
        b if b >= 0x80 => format!("a non-ASCII byte (0x{b:02X})"),
        b => format!("{:?}", char::from(b)),
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Name(name) => {
                f.write_str("invalid header name ")?;
                write_quoted_short(f, name)?;
                match self.byte {
                    None => f.write_str(": it is empty"),
                    Some(b) => write!(
                        f,
                        ": it contains {}, but a header name must be a token \
                         (letters, digits and !#$%&'*+-.^_`|~)",
                        describe_byte(b)
                    ),
                }
            }
            Subject::Value(name) => {
                match name {
                    Some(name) => {
                        f.write_str("invalid value for header ")?;
                        write_quoted_short(f, name)?;
                    }
                    None => f.write_str("invalid header value")?,
                }
                match self.byte {
                    Some(b) => write!(
                        f,
                        ": it contains {}; header values must not contain CR, LF, \
                         NUL or other control characters except tab",
                        describe_byte(b)
                    ),
                    None => f.write_str(": it is malformed"),
                }
            }
            Subject::Method(m) => {
                f.write_str("invalid request method ")?;
                write_quoted_short(f, m)?;
                match self.byte {
                    None => f.write_str(": it is empty"),
                    Some(b) => write!(
                        f,
                        ": it contains {}, but a method must be a token",
                        describe_byte(b)
                    ),
                }
            }
            Subject::Target(t) => {
                f.write_str("invalid request target ")?;
                write_quoted_short(f, t)?;
                match self.byte {
                    None => f.write_str(": it is empty"),
                    Some(b) => write!(
                        f,
                        ": it contains {}; the target must be visible ASCII \
                         (percent-encode anything else)",
                        describe_byte(b)
                    ),
                }
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Checks that `name` can be sent as a header name (an RFC 9110 token).
pub fn validate_header_name(name: &str) -> Result<(), HeaderError> {
    if name.is_empty() {
        return Err(HeaderError {
            subject: Subject::Name(String::new()),
            byte: None,
        });
    }
    match name.bytes().find(|&b| !is_tchar(b)) {
        None => Ok(()),
        Some(b) => Err(HeaderError {
            subject: Subject::Name(name.to_owned()),
            byte: Some(b),
        }),
    }
}

/// Checks that `value` can be sent as a header value: no CR, LF, NUL, DEL
/// or other control character except horizontal tab. Non-ASCII (UTF-8)
/// bytes are allowed as RFC 9110 `obs-text`.
///
/// The error does not know the header's name; see
/// [`HeaderError::with_header_name`] or [`validate_header`].
pub fn validate_header_value(value: &str) -> Result<(), HeaderError> {
    match value
        .bytes()
        .find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        None => Ok(()),
        Some(b) => Err(HeaderError {
            subject: Subject::Value(None),
            byte: Some(b),
        }),
    }
}

/// Validates a whole header line; errors name the header.
pub fn validate_header(name: &str, value: &str) -> Result<(), HeaderError> {
    validate_header_name(name)?;
    validate_header_value(value).map_err(|e| e.with_header_name(name))
}

/// An HTTP/1.1 request head: request line and header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The request target in origin form (`/path?query`), or another form
    /// the driver chose.
    pub target: &'a str,
    /// Header fields in sending order, names as given (HTTP/1.1 names are
    /// case-insensitive; sending them as given lets users match picky
    /// servers).
    pub headers: &'a [(String, String)],
}

const VERSION_CRLF: &[u8] = b" HTTP/1.1\r\n";

impl RequestHead<'_> {
    /// Checks the method (a token), the target (non-empty visible ASCII) and
    /// every header with [`validate_header`]; the first problem is returned.
    pub fn validate(&self) -> Result<(), HeaderError> {
        if self.method.is_empty() {
            return Err(HeaderError {
                subject: Subject::Method(String::new()),
                byte: None,
            });
        }
        if let Some(b) = self.method.bytes().find(|&b| !is_tchar(b)) {
            return Err(HeaderError {
                subject: Subject::Method(self.method.to_owned()),
                byte: Some(b),
            });
        }
        if self.target.is_empty() {
            return Err(HeaderError {
                subject: Subject::Target(String::new()),
                byte: None,
            });
        }
        if let Some(b) = self.target.bytes().find(|b| !b.is_ascii_graphic()) {
            return Err(HeaderError {
                subject: Subject::Target(self.target.to_owned()),
                byte: Some(b),
            });
        }
        for (name, value) in self.headers {
            validate_header(name, value)?;
        }
        Ok(())
    }

    /// Encodes `METHOD target HTTP/1.1\r\n`, then `Name: value\r\n` for each
    /// header, then the blank line.
    ///
    /// Nothing is validated or reordered here; run
    /// [`validate`](Self::validate) (or the per-header validators) on
    /// anything that came from a user first.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_slice(self.method.as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.target.as_bytes());
        out.put_slice(VERSION_CRLF);
        for (name, value) in self.headers {
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }

    /// The exact length of [`encode`](Self::encode)'s output, without
    /// encoding (for byte accounting before sending).
    pub fn encoded_len(&self) -> usize {
        // All these strings are in memory at once, so the sum cannot
        // overflow in practice; saturate anyway rather than wrap.
        let line = self
            .method
            .len()
            .saturating_add(1)
            .saturating_add(self.target.len())
            .saturating_add(VERSION_CRLF.len());
        self.headers
            .iter()
            .fold(line, |acc, (n, v)| {
                acc.saturating_add(n.len())
                    .saturating_add(v.len())
                    .saturating_add(4)
            })
            .saturating_add(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: &str, v: &str) -> (String, String) {
        (n.to_owned(), v.to_owned())
    }

    #[test]
    fn tokens() {
        assert!(is_token("Content-Type"));
        assert!(is_token("x!#$%&'*+-.^_`|~09AZaz"));
        assert!(!is_token(""));
        for bad in [
            "a b", "a:b", "a\"", "a(b)", "a/b", "é", "a\r", "a\0", "a,b", "a@b",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn header_names() {
        assert!(validate_header_name("X-Request-Id").is_ok());
        let e = validate_header_name("").unwrap_err();
        assert_eq!(e.to_string(), "invalid header name \"\": it is empty");
        let e = validate_header_name("X Foo").unwrap_err();
        assert_eq!(e.header_name(), Some("X Foo"));
        assert_eq!(e.offending_byte(), Some(b' '));
        assert!(e
            .to_string()
            .starts_with("invalid header name \"X Foo\": it contains a space"));
        let e = validate_header_name("X-Foo:\r\nEvil").unwrap_err();
        assert!(e.to_string().contains("\\r\\n"), "{e}");
    }

    #[test]
    fn header_values() {
        for ok in [
            "",
            "text/plain",
            "a\tb",
            "caf\u{e9}",
            "  padded  ",
            "\u{1F600}",
        ] {
            assert!(validate_header_value(ok).is_ok(), "{ok:?}");
        }
        for (bad, byte) in [
            ("a\r\nb", b'\r'),
            ("a\nb", b'\n'),
            ("a\0", 0),
            ("\x01", 1),
            ("\x1b[31m", 0x1b),
            ("del\x7f", 0x7f),
        ] {
            let e = validate_header_value(bad).unwrap_err();
            assert_eq!(e.offending_byte(), Some(byte));
            assert_eq!(e.header_name(), None);
        }
        let e = validate_header_value("a\nb").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid header value: it contains a line feed (LF, 0x0A); header values \
             must not contain CR, LF, NUL or other control characters except tab"
        );
        let e = validate_header("X-Token", "a\rb").unwrap_err();
        assert_eq!(e.header_name(), Some("X-Token"));
        assert!(e
            .to_string()
            .starts_with("invalid value for header \"X-Token\": it contains a carriage return"));
        assert!(validate_header("Bad Name", "v")
            .unwrap_err()
            .to_string()
            .contains("name"));
    }

    #[test]
    fn error_display_is_bounded_and_total() {
        let long = "x".repeat(10_000) + "\n";
        let msg = validate_header("X", &long).unwrap_err().to_string();
        assert!(msg.len() < 300);
        let msg = validate_header_name(&("é".repeat(100)))
            .unwrap_err()
            .to_string();
        assert!(msg.contains('…') && msg.contains("non-ASCII byte (0xC3)"));
        for b in 0u8..=255 {
            let s = String::from_utf8_lossy(&[b'a', b]).into_owned();
            if let Err(e) = validate_header(&s, &s) {
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn encodes_request_head() {
        let headers = [
            h("Host", "example.com"),
            h("content-length", "12"),
            h("X-Empty", ""),
        ];
        let head = RequestHead {
            method: "POST",
            target: "/upload?a=1",
            headers: &headers,
        };
        let bytes = head.encode();
        assert_eq!(
            bytes.as_ref(),
            b"POST /upload?a=1 HTTP/1.1\r\nHost: example.com\r\ncontent-length: 12\r\n\
              X-Empty: \r\n\r\n"
        );
        assert_eq!(head.encoded_len(), bytes.len());
        assert!(head.validate().is_ok());
    }

    #[test]
    fn encodes_without_headers() {
        let head = RequestHead {
            method: "GET",
            target: "/",
            headers: &[],
        };
        assert_eq!(head.encode().as_ref(), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(head.encoded_len(), 18);
    }

    #[test]
    fn encoded_len_counts_utf8_bytes() {
        let headers = [h("X-Name", "фото.jpg")];
        let head = RequestHead {
            method: "POST",
            target: "/",
            headers: &headers,
        };
        assert_eq!(head.encoded_len(), head.encode().len());
    }

    #[test]
    fn validates_whole_head() {
        let good = [h("Host", "h")];
        let mk = |method, target, headers| RequestHead {
            method,
            target,
            headers,
        };
        assert!(mk("POST", "/", &good).validate().is_ok());
        assert!(mk("", "/", &good)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("method"));
        assert!(mk("PO ST", "/", &good).validate().is_err());
        assert!(mk("POST", "", &good)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("target"));
        assert!(mk("POST", "/a b", &good).validate().is_err());
        assert!(mk("POST", "/é", &good).validate().is_err());
        assert!(mk("POST", "/\r\nX: y", &good).validate().is_err());
        let bad = [h("Host", "h"), h("X", "a\r\nInjected: 1")];
        let e = mk("POST", "/", &bad).validate().unwrap_err();
        assert_eq!(e.header_name(), Some("X"));
    }
}
