//! Server configuration and the per-request knobs that may override it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How a [`Sink`](crate::Sink) behaves.
///
/// Every behavioural field except `listen`, `tls`, `tls_handshake_delay`,
/// `httpdns`, `offer_h2`, `h3`, `h3_max_concurrent_streams`, `tls_certificate` and `record_limit`
/// can also be overridden for a single request with a query
/// parameter (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// Address to listen on. Default `127.0.0.1:0` (an ephemeral port).
    pub listen: SocketAddr,
    /// Serve HTTPS with a self-signed CA and a leaf certificate made at start
    /// with rcgen. Default `false`.
    pub tls: bool,
    /// Only count body bytes, no multipart parsing; the answer is
    /// `{"receivedBytes":N}`. Default `false`. Query: `discard=1`.
    pub discard: bool,
    /// Status code to answer with. Default 200. Query: `status=500`.
    pub status: u16,
    /// Wait this long after reading the body, before answering (with
    /// `answer_before_body`: before that early answer). Counted from the raw
    /// read that delivered the body's last byte (the head's last byte for an
    /// early answer), not from when the sink finished processing it, and
    /// timed by a high-resolution timer thread rather than tokio's 1 ms
    /// wheel: the response's first byte is written ~0.1 ms after the mark on
    /// an idle machine. Default 0. Query: `delay_ms=200`.
    pub delay: Duration,
    /// If `Some(n)`, answer a body of exactly `n` bytes of `'x'` instead of
    /// the JSON verdict. Default `None`. Query: `body_size=100000`.
    pub response_body_size: Option<usize>,
    /// Answer (with `status`) right after the request head, without reading
    /// the body, then close the connection. Default `false`. Query: `early=1`.
    pub answer_before_body: bool,
    /// Close the connection without any response after reading the head (or
    /// `close_after_bytes` body bytes). Default `false`. Query: `close=1`.
    pub close_early: bool,
    /// With `close_early`, how many body bytes to read before closing.
    /// Default 0. Query: `close_after=4096`.
    pub close_after_bytes: u64,
    /// If `false`, answer with `Connection: close`. Default `true`.
    /// Query: `keepalive=0`.
    pub keep_alive: bool,
    /// With `tls`: hold the server's first handshake write (its answer to
    /// the ClientHello) for this long after the ClientHello was read, so
    /// that a client's TLS phase lasts this long plus the handshake itself.
    /// Default 0. Config only (there is no request yet).
    pub tls_handshake_delay: Duration,
    /// Serve an HTTPDNS endpoint: `GET /d?dn=HOST` is answered `text/plain`
    /// with the host's addresses joined by `;` (`1.2.3.4;::1`), or an empty
    /// body for a host not in the map, as public HTTPDNS services do. Host
    /// names match ASCII case-insensitively, ignoring a trailing dot. The
    /// knobs `delay_ms`, `status`, `keepalive` and `trickle_ms` apply.
    /// Default `None` (`/d` is an ordinary upload path).
    pub httpdns: Option<HashMap<String, Vec<IpAddr>>>,
    /// Offer `h2` in TLS ALPN (and accept h2c prior knowledge on plain listeners is
    /// unaffected). `false` makes a TLS sink that speaks HTTP/1.1 only, to test clients'
    /// fallback. Default `true`.
    pub offer_h2: bool,
    /// Keep the records (and connection timings, and redirects) of only the last this many
    /// requests (and connections, and redirects), so a long-lived sink or a soak run does not
    /// grow without bound; older ones are dropped and no longer returned by snapshots or
    /// [`records_since`](crate::SinkHandle::records_since). Counters are unaffected. Everything
    /// else the sink holds lives only as long as its connection or request (a request still in
    /// flight keeps its record until it finishes, past the limit), so with a limit its memory
    /// stays flat however many requests it serves: `uploadfile serve` keeps 64, and
    /// takes its log from [`SinkHandle::finished_records`](crate::SinkHandle::finished_records)
    /// instead (docs/performance.md, "The sink stays flat"; keeping every record cost it about
    /// 0.9 KiB of RSS per request). Default `None`: keep everything (what tests that inspect
    /// records want).
    pub record_limit: Option<usize>,
    /// With `tls`: also serve HTTP/3 (QUIC, ALPN `h3`) over UDP on the same
    /// IP and port number as the TCP listener, with the same certificate;
    /// see [`SinkHandle::h3_addr`](crate::SinkHandle::h3_addr). Every request
    /// is served by the same handler as HTTP/1.1 and h2 (same verdict, knobs
    /// and records; protocol `"HTTP/3"`). Ignored without `tls` (QUIC has no
    /// plain-text form). Default `false`.
    pub h3: bool,
    /// With `h3`: how many request streams a client may have open at once
    /// on one QUIC connection (QUIC's `initial_max_streams_bidi`). Default
    /// 100.
    pub h3_max_concurrent_streams: u32,
    /// With `tls`: serve this certificate chain and key (PEM) instead of a
    /// throw-away CA and leaf made at start; the sink then has no CA to
    /// hand out ([`SinkHandle::ca_pem`](crate::SinkHandle::ca_pem) is `None`).
    /// Default `None`.
    pub tls_certificate: Option<TlsCertificate>,
}

/// A server certificate chain and its private key, both PEM (as `uploadfile serve --cert --key`
/// reads them from files).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsCertificate {
    /// The leaf first, then any intermediates.
    pub chain_pem: Vec<u8>,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsCertificate")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .finish_non_exhaustive()
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: false,
            discard: false,
            status: 200,
            delay: Duration::ZERO,
            response_body_size: None,
            answer_before_body: false,
            close_early: false,
            close_after_bytes: 0,
            keep_alive: true,
            tls_handshake_delay: Duration::ZERO,
            httpdns: None,
            offer_h2: true,
            record_limit: None,
            h3: false,
            h3_max_concurrent_streams: 100,
            tls_certificate: None,
        }
    }
}

/// The behaviour in force for one request: the config overridden by the
/// request's query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Knobs {
    pub status: u16,
    pub delay: Duration,
    pub body_size: Option<usize>,
    pub early: bool,
    pub close: bool,
    pub close_after: u64,
    pub keep_alive: bool,
    pub discard: bool,
    /// Spread the response body over this long (`trickle_ms`).
    pub trickle: Duration,
    /// Answer a redirect: (status, decoded `to`).
    pub redirect: Option<(u16, String)>,
}

/// The redirect statuses `redirect=` accepts.
pub(crate) const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

impl Knobs {
    /// Applies the query string's knobs on top of `config`. Unknown
    /// parameters are ignored; a known one with a bad value is an error.
    pub fn resolve(config: &SinkConfig, query: Option<&str>) -> Result<Knobs, String> {
        let mut k = Knobs {
            status: config.status,
            delay: config.delay,
            body_size: config.response_body_size,
            early: config.answer_before_body,
            close: config.close_early,
            close_after: config.close_after_bytes,
            keep_alive: config.keep_alive,
            discard: config.discard,
            trickle: Duration::ZERO,
            redirect: None,
        };
        let mut redirect: Option<u16> = None;
        let mut to: Option<String> = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "status" => k.status = number(key, value)?,
                "delay_ms" => k.delay = Duration::from_millis(number(key, value)?),
                "body_size" => {
                    k.body_size = match value {
                        "" | "none" => None,
                        v => Some(number(key, v)?),
                    }
                }
                "early" => k.early = flag(key, value)?,
                "close" => k.close = flag(key, value)?,
                "close_after" => k.close_after = number(key, value)?,
                "keepalive" | "keep_alive" => k.keep_alive = flag(key, value)?,
                "discard" => k.discard = flag(key, value)?,
                "trickle_ms" => k.trickle = Duration::from_millis(number(key, value)?),
                "redirect" => {
                    let code = number(key, value)?;
                    if !REDIRECT_CODES.contains(&code) {
                        return Err(format!(
                            "query parameter redirect={value:?} is not one of 301, 302, 303, 307, 308"
                        ));
                    }
                    redirect = Some(code);
                }
                "to" => {
                    to = Some(percent_decode(value).ok_or_else(|| {
                        format!("query parameter to={value:?} is not valid percent-encoded UTF-8")
                    })?)
                }
                _ => {}
            }
        }
        k.redirect = match (redirect, to) {
            (Some(code), Some(to)) => Some((code, to)),
            (Some(_), None) => return Err("redirect= needs a to= location".to_string()),
            (None, _) => None,
        };
        if !(200..=999).contains(&k.status) {
            return Err(format!(
                "status {} is not a final status (200..=999)",
                k.status
            ));
        }
        Ok(k)
    }
}

/// RFC 3986 percent-decoding (`+` stays `+`); `None` for a bad escape or
/// bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            out.push(digit(hex[0]) << 4 | digit(hex[1]));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("query parameter {key}={value:?} is not a valid number"))
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("query parameter {key}={value:?} is not a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_through() {
        let c = SinkConfig::default();
        let k = Knobs::resolve(&c, None).unwrap();
        assert_eq!(k.status, 200);
        assert!(k.keep_alive && !k.early && !k.close && !k.discard);
        assert_eq!(k.body_size, None);
    }

    #[test]
    fn query_overrides() {
        let c = SinkConfig::default();
        let q = "status=500&delay_ms=200&body_size=100000&early=1&close&close_after=4096&keepalive=0&x=y&discard=true";
        let k = Knobs::resolve(&c, Some(q)).unwrap();
        assert_eq!(k.status, 500);
        assert_eq!(k.delay, Duration::from_millis(200));
        assert_eq!(k.body_size, Some(100_000));
        assert!(k.early && k.close && k.discard && !k.keep_alive);
        assert_eq!(k.close_after, 4096);
    }

    #[test]
    fn bad_values_are_errors() {
        let c = SinkConfig::default();
        assert!(Knobs::resolve(&c, Some("status=abc")).is_err());
        assert!(Knobs::resolve(&c, Some("status=100")).is_err());
        assert!(Knobs::resolve(&c, Some("early=maybe")).is_err());
        assert!(Knobs::resolve(&c, Some("redirect=300&to=/x")).is_err());
        assert!(Knobs::resolve(&c, Some("redirect=302")).is_err());
        assert!(Knobs::resolve(&c, Some("redirect=302&to=%zz")).is_err());
        assert!(Knobs::resolve(&c, Some("trickle_ms=-1")).is_err());
    }

    #[test]
    fn redirect_and_trickle() {
        let c = SinkConfig::default();
        let q = "redirect=307&to=http%3A%2F%2F127.0.0.1%3A80%2Fa%3Fb%3D1%26c&trickle_ms=500";
        let k = Knobs::resolve(&c, Some(q)).unwrap();
        assert_eq!(
            k.redirect,
            Some((307, "http://127.0.0.1:80/a?b=1&c".to_string()))
        );
        assert_eq!(k.trickle, Duration::from_millis(500));
        let k = Knobs::resolve(&c, Some("to=/ignored")).unwrap();
        assert_eq!(k.redirect, None);
        assert_eq!(percent_decode("a+b%20c%C3%A9").as_deref(), Some("a+b cé"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%+1"), None);
    }
}
