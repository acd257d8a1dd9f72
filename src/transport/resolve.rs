//! Resolving an upload's host: IP literal, cache, HTTPDNS, then the resolver — each step timed
//! and returned as [`Resolved`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::httpdns;
use crate::dns::{HttpDnsConfig, Resolve};
use crate::error::{ErrorKind, UploadError};
use crate::measure::{DnsSource, ResolveStamps};

/// What name resolution found and measured.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub ips: Vec<IpAddr>,
    /// Which step answered.
    pub source: DnsSource,
    pub stamps: ResolveStamps,
}

/// The client's resolution procedure and its cache.
pub(crate) struct HostResolver {
    resolver: Arc<dyn Resolve>,
    httpdns: Option<HttpDnsConfig>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Vec<IpAddr>, Instant)>>,
}

impl HostResolver {
    pub(crate) fn new(
        resolver: Arc<dyn Resolve>,
        httpdns: Option<HttpDnsConfig>,
        ttl: Duration,
    ) -> Self {
        HostResolver {
            resolver,
            httpdns,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Addresses for `host`, which step gave them, and the stamps of the steps taken.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        tls: &Arc<rustls::ClientConfig>,
        user_agent: &str,
    ) -> Result<Resolved, UploadError> {
        let mut stamps = ResolveStamps::default();
        let found = |ips, source, stamps| Resolved {
            ips,
            source,
            stamps,
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(found(vec![ip], DnsSource::Literal, stamps));
        }
        if let Some(ips) = self.cached(host) {
            return Ok(found(ips, DnsSource::Cache, stamps));
        }
        let mut httpdns_error = None;
        if let Some(config) = &self.httpdns {
            stamps.http_dns_domain_look_up_start = Some(Instant::now()); // httpDNSDomainLookUpStart
            let answer =
                httpdns::lookup(config, host, tls, self.resolver.as_ref(), user_agent).await;
            stamps.http_dns_domain_look_up_end = Some(Instant::now()); // httpDNSDomainLookUpEnd
            match answer {
                Ok(ips) => {
                    self.store(host, &ips);
                    return Ok(found(ips, DnsSource::HttpDns, stamps));
                }
                Err(e) => httpdns_error = Some(e),
            }
        }
        stamps.domain_look_up_start = Some(Instant::now()); // domainLookUpStart
        let answer = self.resolver.resolve(host).await;
        stamps.domain_look_up_end = Some(Instant::now()); // domainLookUpEnd
        let ips = answer.map_err(|e| {
            let mut detail = format!("{host}: {e}");
            if let Some(h) = &httpdns_error {
                detail.push_str(&format!(" (HTTPDNS failed first: {h})"));
            }
            UploadError::new(ErrorKind::Dns, detail)
        })?;
        if ips.is_empty() {
            return Err(UploadError::new(
                ErrorKind::Dns,
                format!("{host}: no addresses"),
            ));
        }
        self.store(host, &ips);
        let source = if httpdns_error.is_some() {
            DnsSource::HttpDnsFallback
        } else {
            DnsSource::Resolver
        };
        Ok(found(ips, source, stamps))
    }

    fn cached(&self, host: &str) -> Option<Vec<IpAddr>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(host) {
            Some((ips, expires)) if Instant::now() < *expires => Some(ips.clone()),
            Some(_) => {
                cache.remove(host);
                None
            }
            None => None,
        }
    }

    fn store(&self, host: &str, ips: &[IpAddr]) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 1024 {
            let now = Instant::now();
            cache.retain(|_, (_, expires)| *expires > now);
        }
        cache.insert(host.to_string(), (ips.to_vec(), Instant::now() + self.ttl));
    }
}
