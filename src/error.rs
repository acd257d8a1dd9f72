//! Errors in the original's form.
//!
//! The mini-program API reports every failure as an object whose `errMsg` reads
//! `uploadFile:fail <reason>`. Hosts match on the reason text, so the reasons here are short,
//! stable and listed in `docs/errors.md`; the detail that helps a human (which header, which
//! path, what the OS said) travels separately and never changes the reason. Each kind also has a
//! stable numeric code (`errno` in the JSON bridge).

use std::fmt;

/// What went wrong, coarsely enough to match on and stable across releases.
///
/// The numeric [`code`](ErrorKind::code) and the [`reason`](ErrorKind::reason) text of a kind
/// never change once released; new kinds get new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The options are incomplete or of the wrong type (missing `url`, `name`, `filePath`, a
    /// `formData` value that is an object, a non-positive `timeout`, ...).
    InvalidOptions,
    /// The `url` does not parse, has no host, carries userinfo, or uses a scheme other than
    /// `http` / `https`.
    InvalidUrl,
    /// A request header is not allowed: `Referer` (the original forbids it), a name that is not
    /// an HTTP token, a value with CR, LF or NUL, or a framing header the client owns.
    InvalidHeader,
    /// `filePath` does not exist.
    FileNotFound,
    /// `filePath` exists but is not a regular file (a directory, a FIFO, a device).
    NotAFile,
    /// The file could not be opened or read (permissions, I/O error).
    FileRead,
    /// The file changed while it was being uploaded (truncated, written to in place, or
    /// replaced); the body is never completed.
    FileChanged,
    /// Name resolution failed.
    Dns,
    /// The TCP connection could not be established (refused, unreachable).
    Connect,
    /// The TLS handshake failed, including certificate verification.
    Tls,
    /// The connection closed or was reset before the response was complete.
    ConnectionClosed,
    /// The server's response is not valid HTTP (malformed head, bad framing, too large a head).
    InvalidResponse,
    /// The response body is larger than the client's configured cap.
    ResponseTooLarge,
    /// More redirects than the client follows (`max_redirects`, default 10).
    TooManyRedirects,
    /// The HTTP/2 server reset the upload's stream (RST_STREAM with an error code).
    StreamReset,
    /// A redirect the client will not follow: https -> http, or a `Location` that is not a
    /// usable http(s) URL.
    RedirectRefused,
    /// Another I/O error on the connection.
    Network,
    /// The upload did not complete within `timeout`.
    Timeout,
    /// The upload was aborted by [`UploadTask::abort`](crate::UploadTask::abort).
    Abort,
    /// The client's configuration is invalid (for example an unreadable CA certificate).
    Config,
    /// The client was shut down while the upload was queued or running.
    ClientClosed,
    /// A proxy URL (given to the client, on the command line or in `*_PROXY` / `ALL_PROXY`)
    /// does not parse or names a scheme other than `http`, `https`, `socks4a`, `socks5`,
    /// `socks5h`.
    InvalidProxy,
    /// The proxy wants credentials: an HTTP `407` (the detail names the realm, and whether
    /// credentials were sent), or a SOCKS5 proxy that refused the username and password or
    /// accepts none of the methods offered.
    ProxyAuthRequired,
    /// The proxy did not open the tunnel to the origin: `CONNECT` answered with a non-2xx
    /// status (named in the detail), or a SOCKS reply code other than success (named).
    ProxyTunnelFailed,
    /// The proxy's answer to the tunnel request is not what the protocol allows: not HTTP, a
    /// `CONNECT` 2xx with a body, a malformed SOCKS reply, or the proxy closed the connection
    /// during the handshake.
    InvalidProxyResponse,
}

impl ErrorKind {
    /// Every kind, in code order (used by docs and tests).
    pub const ALL: [ErrorKind; 25] = [
        ErrorKind::InvalidOptions,
        ErrorKind::InvalidUrl,
        ErrorKind::InvalidHeader,
        ErrorKind::FileNotFound,
        ErrorKind::NotAFile,
        ErrorKind::FileRead,
        ErrorKind::FileChanged,
        ErrorKind::Dns,
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::ConnectionClosed,
        ErrorKind::InvalidResponse,
        ErrorKind::ResponseTooLarge,
        ErrorKind::TooManyRedirects,
        ErrorKind::RedirectRefused,
        ErrorKind::StreamReset,
        ErrorKind::Network,
        ErrorKind::Timeout,
        ErrorKind::Abort,
        ErrorKind::Config,
        ErrorKind::ClientClosed,
        ErrorKind::InvalidProxy,
        ErrorKind::ProxyAuthRequired,
        ErrorKind::ProxyTunnelFailed,
        ErrorKind::InvalidProxyResponse,
    ];

    /// The stable numeric code (`errno` in the JSON bridge).
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::InvalidOptions => 1001,
            ErrorKind::InvalidUrl => 1002,
            ErrorKind::InvalidHeader => 1003,
            ErrorKind::FileNotFound => 1101,
            ErrorKind::NotAFile => 1102,
            ErrorKind::FileRead => 1103,
            ErrorKind::FileChanged => 1104,
            ErrorKind::Dns => 1201,
            ErrorKind::Connect => 1202,
            ErrorKind::Tls => 1203,
            ErrorKind::ConnectionClosed => 1301,
            ErrorKind::InvalidResponse => 1302,
            ErrorKind::ResponseTooLarge => 1303,
            ErrorKind::TooManyRedirects => 1305,
            ErrorKind::RedirectRefused => 1306,
            ErrorKind::StreamReset => 1307,
            ErrorKind::Network => 1304,
            ErrorKind::Timeout => 1401,
            ErrorKind::Abort => 1402,
            ErrorKind::Config => 1501,
            ErrorKind::ClientClosed => 1502,
            ErrorKind::InvalidProxy => 1004,
            ErrorKind::ProxyAuthRequired => 1204,
            ErrorKind::ProxyTunnelFailed => 1205,
            ErrorKind::InvalidProxyResponse => 1206,
        }
    }

    /// The stable reason text that follows `uploadFile:fail `.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::InvalidOptions => "invalid options",
            ErrorKind::InvalidUrl => "invalid url",
            ErrorKind::InvalidHeader => "invalid header",
            ErrorKind::FileNotFound => "file not found",
            ErrorKind::NotAFile => "not a regular file",
            ErrorKind::FileRead => "file read error",
            ErrorKind::FileChanged => "file changed during upload",
            ErrorKind::Dns => "dns resolution failed",
            ErrorKind::Connect => "connect failed",
            ErrorKind::Tls => "ssl handshake failed",
            ErrorKind::ConnectionClosed => "connection closed",
            ErrorKind::InvalidResponse => "invalid response",
            ErrorKind::ResponseTooLarge => "response too large",
            ErrorKind::TooManyRedirects => "too many redirects",
            ErrorKind::RedirectRefused => "redirect refused",
            ErrorKind::StreamReset => "stream reset",
            ErrorKind::Network => "network error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Abort => "abort",
            ErrorKind::Config => "invalid client configuration",
            ErrorKind::ClientClosed => "client closed",
            ErrorKind::InvalidProxy => "invalid proxy",
            ErrorKind::ProxyAuthRequired => "proxy authentication required",
            ErrorKind::ProxyTunnelFailed => "proxy tunnel failed",
            ErrorKind::InvalidProxyResponse => "invalid proxy response",
        }
    }
}

/// A failed upload.
///
/// `err_msg()` gives the original's `uploadFile:fail <reason>`; for `timeout` and `abort` it is
/// exactly `uploadFile:fail timeout` / `uploadFile:fail abort`. Other kinds append a detail after
/// a colon (`uploadFile:fail file not found: /tmp/x.png`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadError {
    kind: ErrorKind,
    detail: String,
}

impl UploadError {
    /// An error of `kind` with a human-readable detail (may be empty).
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        UploadError {
            kind,
            detail: detail.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable numeric code of the kind.
    pub fn code(&self) -> u32 {
        self.kind.code()
    }

    /// The detail (which header, which path, what the OS said); empty for timeout and abort.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The original's `errMsg`: `uploadFile:fail <reason>[: <detail>]`.
    pub fn err_msg(&self) -> String {
        if self.detail.is_empty() {
            format!("uploadFile:fail {}", self.kind.reason())
        } else {
            format!("uploadFile:fail {}: {}", self.kind.reason(), self.detail)
        }
    }

    pub(crate) fn timeout() -> Self {
        UploadError::new(ErrorKind::Timeout, "")
    }

    pub(crate) fn abort() -> Self {
        UploadError::new(ErrorKind::Abort, "")
    }

    /// Map an I/O error on an established connection to a kind.
    pub(crate) fn from_io(err: &std::io::Error, while_doing: &str) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::NotConnected => ErrorKind::ConnectionClosed,
            K::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Network,
        };
        UploadError::new(kind, format!("{while_doing}: {err}"))
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.err_msg())
    }
}

impl std::error::Error for UploadError {}

impl UploadError {
    /// The original's failure object: `{"errMsg":"uploadFile:fail ...","errno":N}`.
    pub fn to_original_json(&self) -> serde_json::Value {
        serde_json::json!({ "errMsg": self.err_msg(), "errno": self.code() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_reasons_are_unique() {
        let codes: HashSet<u32> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        let reasons: HashSet<&str> = ErrorKind::ALL.iter().map(|k| k.reason()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert_eq!(reasons.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn err_msg_has_the_original_form() {
        assert_eq!(UploadError::timeout().err_msg(), "uploadFile:fail timeout");
        assert_eq!(UploadError::abort().err_msg(), "uploadFile:fail abort");
        assert_eq!(
            UploadError::new(ErrorKind::FileNotFound, "/tmp/x").err_msg(),
            "uploadFile:fail file not found: /tmp/x"
        );
    }
}
