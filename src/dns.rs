//! Name resolution: the pluggable [`Resolve`] trait, the system resolver, a static resolver for
//! tests and controlled setups, and the HTTPDNS configuration.
//!
//! A client resolves a host in this order, each step timed for the profile:
//!
//! 1. an IP literal needs no lookup;
//! 2. the client's DNS cache (lifetime [`ClientBuilder::dns_cache_ttl`](crate::ClientBuilder::dns_cache_ttl));
//! 3. HTTPDNS, when configured ([`HttpDnsConfig`]): an HTTP `GET <endpoint>?dn=<host>` answered by
//!    `ip;ip;...`, sent over this crate's own HTTP/1.1 code (`httpDNSDomainLookUpStart` / `End`);
//! 4. the client's resolver ([`SystemResolver`] unless another was given):
//!    `domainLookUpStart` / `End`. A failing or empty HTTPDNS answer falls back to this step, and
//!    the profile then shows both lookups.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future of resolved addresses.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// A name resolver. Implement it to supply your own (a test resolver with an injected delay, a
/// DNS-over-HTTPS client, a fixed table).
pub trait Resolve: Send + Sync + 'static {
    /// Resolve `host` (a DNS name, never an IP literal) to addresses, in preference order.
    fn resolve(&self, host: &str) -> ResolveFuture;
}

/// The operating system's resolver (`getaddrinfo` on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> ResolveFuture {
        let host = host.to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            Ok(ips)
        })
    }
}

/// A resolver answering from a fixed table, optionally after a delay: for tests and for pinning
/// hosts to addresses. Unknown hosts fail with `NotFound`.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    table: Arc<HashMap<String, Vec<IpAddr>>>,
    delay: Duration,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        StaticResolver::default()
    }

    /// Answer `host` (case-insensitive) with `ips`.
    pub fn with_host(mut self, host: &str, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        Arc::make_mut(&mut self.table).insert(host.to_ascii_lowercase(), ips.into_iter().collect());
        self
    }

    /// Answer only after `delay` (to test that the profile recovers it). The delay is kept to
    /// the microsecond: tokio's timer sleeps in whole milliseconds, so the last stretch is a
    /// yielding wait for the exact deadline.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve(&self, host: &str) -> ResolveFuture {
        let answer = self.table.get(&host.to_ascii_lowercase()).cloned();
        let delay = self.delay;
        let host = host.to_string();
        let deadline = std::time::Instant::now() + delay;
        Box::pin(async move {
            sleep_precisely_until(deadline).await;
            answer.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{host}: not in the table"))
            })
        })
    }
}

/// Sleep until `deadline` to the microsecond: the timer for all but the last 2 ms, then yield
/// until the clock reaches it.
async fn sleep_precisely_until(deadline: std::time::Instant) {
    let coarse = deadline.checked_sub(Duration::from_millis(2));
    if let Some(coarse) = coarse.filter(|c| *c > std::time::Instant::now()) {
        tokio::time::sleep_until(coarse.into()).await;
    }
    while std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// Where and how to ask an HTTPDNS service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDnsConfig {
    /// The endpoint, e.g. `http://203.0.113.1/d`; the client appends `?dn=<host>` (or
    /// `&dn=<host>` when the endpoint already has a query). `http` or `https`. Its host should
    /// be an IP literal; a name is resolved with the client's resolver (never with HTTPDNS).
    pub endpoint: String,
    /// How long to wait for the answer before falling back to the resolver. Default 2 s.
    pub timeout: Duration,
}

impl HttpDnsConfig {
    /// HTTPDNS at `endpoint` with the default 2 s timeout.
    pub fn new(endpoint: impl Into<String>) -> Self {
        HttpDnsConfig {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(2),
        }
    }

    /// Set the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Parse an HTTPDNS answer: addresses separated by `;` (commas, spaces and newlines tolerated).
/// Entries that are not IP addresses are skipped; an empty result means "no answer".
pub fn parse_httpdns_answer(body: &str) -> Vec<IpAddr> {
    body.split([';', ',', ' ', '\n', '\r', '\t'])
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn httpdns_answers() {
        assert_eq!(
            parse_httpdns_answer("1.2.3.4;5.6.7.8\n"),
            vec![
                "1.2.3.4".parse::<IpAddr>().unwrap(),
                "5.6.7.8".parse().unwrap()
            ]
        );
        assert_eq!(
            parse_httpdns_answer("::1; 10.0.0.1 ,junk"),
            vec![
                "::1".parse::<IpAddr>().unwrap(),
                "10.0.0.1".parse().unwrap()
            ]
        );
        assert!(parse_httpdns_answer("").is_empty());
        assert!(parse_httpdns_answer("<html>error</html>").is_empty());
    }

    #[tokio::test]
    async fn static_resolver() {
        let r = StaticResolver::new().with_host("A.test", ["127.0.0.1".parse().unwrap()]);
        assert_eq!(r.resolve("a.test").await.unwrap().len(), 1);
        assert_eq!(
            r.resolve("b.test").await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
