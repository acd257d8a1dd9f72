//! Server configuration and the per-request knobs that may override it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How a [`Sink`](crate::Sink) behaves.
///
/// Every behavioural field except `listen` and `tls` can also be overridden
/// for a single request with a query parameter (see the crate docs).
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
    /// `answer_before_body`: before that early answer). Default 0.
    /// Query: `delay_ms=200`.
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
}

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
        };
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
                _ => {}
            }
        }
        if !(200..=999).contains(&k.status) {
            return Err(format!(
                "status {} is not a final status (200..=999)",
                k.status
            ));
        }
        Ok(k)
    }
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
    }
}
