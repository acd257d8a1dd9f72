//! Where a request goes: a URL checked and split into the connection's [`Origin`], the request
//! target and the `Host` header. Shared by uploads, redirect hops and the HTTPDNS client.

use std::fmt;

use url::{Host, Url};

use crate::error::{ErrorKind, UploadError};

/// Where a connection goes: the pool's key. Two URLs with the same origin share connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub tls: bool,
    /// Lower-case host name, or an IP literal without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Where a hop goes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub origin: Origin,
    /// Path and query.
    pub request_target: String,
    /// The `Host` header value.
    pub host_header: String,
}

/// Check an http(s) URL the client may use (a host, no userinfo) and split it.
pub(crate) fn parse_url(raw: &str) -> Result<Target, UploadError> {
    parse_url_parts(raw).map(|(_, target)| target)
}

/// [`parse_url`], with the parsed URL itself (one parse for both).
pub(crate) fn parse_url_parts(raw: &str) -> Result<(Url, Target), UploadError> {
    let bad = |detail: String| UploadError::new(ErrorKind::InvalidUrl, detail);
    let url = Url::parse(raw).map_err(|e| bad(format!("{raw}: {e}")))?;
    let target = split_url(raw, &url)?;
    Ok((url, target))
}

/// The checks and parts of [`parse_url`] for `url`, parsed from `raw`.
fn split_url(raw: &str, url: &Url) -> Result<Target, UploadError> {
    let bad = |detail: String| UploadError::new(ErrorKind::InvalidUrl, detail);
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(bad(format!(
                "unsupported scheme `{other}` (only http and https)"
            )))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not allowed; send an Authorization header instead".into(),
        ));
    }
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad(format!("{raw}: no host"))),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad(format!("{raw}: no port")))?;
    let host_in_header = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let host_header = match url.port() {
        Some(p) => format!("{host_in_header}:{p}"),
        None => host_in_header,
    };
    let mut request_target = url.path().to_string();
    if let Some(q) = url.query() {
        request_target.push('?');
        request_target.push_str(q);
    }
    Ok(Target {
        origin: Origin { tls, host, port },
        request_target,
        host_header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        let t = parse_url("https://Example.COM/up/load?x=1#frag").unwrap();
        assert_eq!(t.origin.host, "example.com");
        assert_eq!(t.origin.port, 443);
        assert!(t.origin.tls);
        assert_eq!(t.request_target, "/up/load?x=1");
        assert_eq!(t.host_header, "example.com");
        let t = parse_url("http://[::1]:8080").unwrap();
        assert_eq!(t.origin.host, "::1");
        assert_eq!(t.host_header, "[::1]:8080");
        assert_eq!(t.request_target, "/");
        for bad in [
            "not a url",
            "ftp://h/x",
            "http://user:pw@h/",
            "http://user@h/",
            "file:///etc/passwd",
        ] {
            assert_eq!(
                parse_url(bad).err().unwrap().kind(),
                ErrorKind::InvalidUrl,
                "{bad}"
            );
        }
    }
}
