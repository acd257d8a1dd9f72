//! One proxy, as a URL names it: its kind, where it listens, and its credentials.
//!
//! The URL is read as curl reads `-x`: a missing scheme means `http://`; a missing port is 1080
//! (443 for `https://`); userinfo is percent-decoded and becomes the proxy's credentials, which
//! only the proxy ever sees. The credentials never appear in `Debug`, `Display`, an error or a
//! profile field: everything that names the proxy uses [`Proxy::url`], which leaves them out.

use std::fmt;

use url::{Host, Url};

use crate::error::{ErrorKind, UploadError};

/// A proxy's kind, as its URL's scheme names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyScheme {
    /// `http://`: an HTTP proxy. `http://` origins are requested through it in absolute form;
    /// `https://` origins (and HTTP/2) through a `CONNECT` tunnel.
    Http,
    /// `https://`: as `http://`, with TLS to the proxy first (verified against the client's
    /// roots, with the proxy's host name as SNI).
    Https,
    /// `socks4://`: SOCKS4, the origin's name resolved here (IPv4 only).
    Socks4,
    /// `socks4a://`: SOCKS4a, the proxy resolves the origin's name.
    Socks4a,
    /// `socks5://`: SOCKS5 (RFC 1928), the origin's name resolved here.
    Socks5,
    /// `socks5h://`: SOCKS5, the proxy resolves the origin's name.
    Socks5h,
}

impl ProxyScheme {
    /// The scheme as written in a URL (`"socks5h"`), and in `profileExtensions.proxyKind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
            ProxyScheme::Socks4 => "socks4",
            ProxyScheme::Socks4a => "socks4a",
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
        }
    }

    fn from_name(name: &str) -> Option<ProxyScheme> {
        Some(match name {
            "http" => ProxyScheme::Http,
            "https" => ProxyScheme::Https,
            "socks4" => ProxyScheme::Socks4,
            "socks4a" => ProxyScheme::Socks4a,
            "socks5" => ProxyScheme::Socks5,
            "socks5h" => ProxyScheme::Socks5h,
            _ => return None,
        })
    }

    /// The port a URL without one means (curl's: 1080, and 443 for `https://`).
    pub fn default_port(self) -> u16 {
        match self {
            ProxyScheme::Https => 443,
            _ => 1080,
        }
    }

    /// An HTTP proxy (`http://` or `https://`), as opposed to SOCKS.
    pub fn is_http(self) -> bool {
        matches!(self, ProxyScheme::Http | ProxyScheme::Https)
    }

    /// The proxy, not this client, resolves the origin's name (every kind but `socks4://` and
    /// `socks5://`).
    pub fn proxy_resolves_origin(self) -> bool {
        !matches!(self, ProxyScheme::Socks4 | ProxyScheme::Socks5)
    }
}

/// A proxy's user name and password (from the URL's userinfo, or given apart).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Credentials {
    pub user: String,
    pub password: String,
}

/// A proxy to go through. Parse one with [`Proxy::parse`].
///
/// `Debug` and `Display` show [`Proxy::url`]: never the credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    scheme: ProxyScheme,
    /// Lower-case host name, or an IP literal without brackets.
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

impl Proxy {
    /// Parse a proxy URL: `[scheme://][user[:password]@]host[:port][/]`, the scheme one of
    /// `http` (the default), `https`, `socks4`, `socks4a`, `socks5`, `socks5h`. Userinfo is
    /// percent-decoded. Fails with `invalid proxy` (the detail shows the URL without its
    /// credentials).
    pub fn parse(raw: &str) -> Result<Proxy, UploadError> {
        let raw = raw.trim();
        let shown = redact(raw);
        let bad = |why: String| UploadError::new(ErrorKind::InvalidProxy, why);
        if raw.is_empty() {
            return Err(bad("empty proxy URL".into()));
        }
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("http://{raw}")
        };
        let scheme_name = with_scheme
            .split("://")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let scheme = ProxyScheme::from_name(&scheme_name).ok_or_else(|| {
            bad(format!(
                "unsupported proxy scheme `{scheme_name}` in {shown} \
                 (http, https, socks4, socks4a, socks5 or socks5h)"
            ))
        })?;
        // Parsed as an `http://` URL whatever the scheme, so that the host is read by the
        // special-scheme rules (lower-cased, IP literals normalised) for every kind.
        let rest = &with_scheme[scheme_name.len() + 3..];
        let url = Url::parse(&format!("http://{rest}"))
            .map_err(|e| bad(format!("malformed proxy URL {shown}: {e}")))?;
        let host = match url.host() {
            Some(Host::Domain(d)) if !d.is_empty() => d.to_ascii_lowercase(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad(format!("malformed proxy URL {shown}: no host"))),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(bad(format!(
                "malformed proxy URL {shown}: a proxy URL has no path, query or fragment"
            )));
        }
        // `Url` drops a port that is the http default (80): read it back from the text.
        let port = match url.port() {
            Some(0) => return Err(bad(format!("malformed proxy URL {shown}: port 0"))),
            Some(p) => p,
            None if explicit_port_80(rest) => 80,
            None => scheme.default_port(),
        };
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| {
                    bad(format!(
                        "malformed proxy URL {shown}: its credentials are not valid \
                         percent-encoded UTF-8"
                    ))
                })
            };
            Some(Credentials {
                user: decode(url.username())?,
                password: decode(url.password().unwrap_or_default())?,
            })
        };
        Ok(Proxy {
            scheme,
            host,
            port,
            credentials,
        })
    }

    /// The same proxy with these credentials (replacing any from the URL), as curl's
    /// `--proxy-user`.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Proxy {
        self.credentials = Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// The proxy's kind.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// The proxy's host: a lower-case name, or an IP literal without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the proxy has credentials to send.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The proxy's URL without credentials (`socks5h://proxy.example:1080`): what errors,
    /// logs and `profileExtensions.proxyUrl` show.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.scheme.as_str(), self.host, self.port)
        } else {
            format!("{}://{}:{}", self.scheme.as_str(), self.host, self.port)
        }
    }

    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.url())
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// `raw` with any userinfo replaced by `***`, for error messages.
pub(crate) fn redact(raw: &str) -> String {
    let (scheme, rest) = match raw.find("://") {
        Some(i) => (&raw[..i + 3], &raw[i + 3..]),
        None => ("", raw),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => raw.to_string(),
    }
}

/// The authority in `rest` (`[userinfo@]host[:port]...`) names port 80 explicitly.
fn explicit_port_80(rest: &str) -> bool {
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    host_port
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.ends_with(':') && port == "80")
}

/// Percent-decode `s` (`%40` is `@`); `None` if an escape is malformed or the result is not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_curl_reads_them() {
        let p = Proxy::parse("proxy.Example.com").unwrap();
        assert_eq!(p.scheme(), ProxyScheme::Http);
        assert_eq!((p.host(), p.port()), ("proxy.example.com", 1080));
        assert_eq!(p.url(), "http://proxy.example.com:1080");
        let p = Proxy::parse("https://proxy:8443/").unwrap();
        assert_eq!((p.scheme(), p.port()), (ProxyScheme::Https, 8443));
        assert_eq!(Proxy::parse("https://proxy").unwrap().port(), 443);
        assert_eq!(Proxy::parse("http://proxy:80").unwrap().port(), 80);
        assert_eq!(Proxy::parse("HTTP://proxy:80").unwrap().port(), 80);
        let p = Proxy::parse("socks5h://[::1]:9050").unwrap();
        assert_eq!(
            (p.scheme(), p.host(), p.port()),
            (ProxyScheme::Socks5h, "::1", 9050)
        );
        assert_eq!(p.url(), "socks5h://[::1]:9050");
        for (raw, scheme) in [
            ("socks4://h", ProxyScheme::Socks4),
            ("socks4a://h", ProxyScheme::Socks4a),
            ("socks5://h", ProxyScheme::Socks5),
        ] {
            let p = Proxy::parse(raw).unwrap();
            assert_eq!((p.scheme(), p.port()), (scheme, 1080));
        }
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = Proxy::parse("http://us%40er:p%3Ass%20word@proxy:3128").unwrap();
        let c = p.credentials().unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("us@er", "p:ss word")
        );
        let shown = format!("{p} {p:?}");
        assert!(!shown.contains("p:ss") && !shown.contains("us@er") && !shown.contains("%40"));
        let p = Proxy::parse("socks5://user@h").unwrap();
        assert_eq!(p.credentials().unwrap().password, "");
        let p = p.with_credentials("a", "b");
        assert_eq!(p.credentials().unwrap().user, "a");
    }

    #[test]
    fn bad_proxy_urls_are_invalid_proxy_without_credentials_in_the_message() {
        for (raw, says) in [
            ("ftp://user:secret@h:21", "unsupported proxy scheme `ftp`"),
            ("socks6://h", "unsupported proxy scheme `socks6`"),
            ("", "empty proxy URL"),
            ("http://user:secret@", "malformed proxy URL"),
            ("http://h:99999", "malformed proxy URL"),
            ("http://h:0", "port 0"),
            ("http://user:secret@h/path", "no path"),
            ("http://u:%zz@h", "percent-encoded"),
        ] {
            let e = Proxy::parse(raw).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidProxy, "{raw}");
            assert!(e.err_msg().contains(says), "{raw}: {}", e.err_msg());
            assert!(!e.err_msg().contains("secret"), "{}", e.err_msg());
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("http://u:p@h:1/x@y"), "http://***@h:1/x@y");
        assert_eq!(redact("u:p@h"), "***@h");
        assert_eq!(redact("http://h:1"), "http://h:1");
    }
}
