//! The `profile` of the original, and the [`Timeline`] it is computed from.
//!
//! The driver records an [`Instant`] for each event at the I/O boundary where it happens (see
//! `docs/profile.md` for the exact point of each one). One `Timeline` travels with an upload;
//! [`Profile`] is derived from it at the end, applying the original's rules for events that did
//! not happen (a reused connection has no connect phase: its connect fields equal `fetchStart`;
//! plain HTTP has no TLS: the SSL fields are `0`).
//!
//! The JSON form of [`Profile`] always carries every field of the original with its exact name,
//! including the original's typo `receivedBytedCount`. What this project measures beyond the
//! original goes into [`ProfileExtensions`], never into the seed-shaped object.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Instant;

use crate::clock;

/// The protocol that carried a request, as the original names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 (`"http1.1"`).
    #[default]
    Http11,
    /// HTTP/2 (`"h2"`).
    H2,
    /// HTTP/3 over QUIC (`"quic"`).
    Quic,
}

impl Protocol {
    /// The original's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http11 => "http1.1",
            Protocol::H2 => "h2",
            Protocol::Quic => "quic",
        }
    }
}

/// The original's `res.profile`: every field, exact JSON names. Timestamps are milliseconds
/// since the Unix epoch with microsecond resolution; `0` means "did not happen".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Profile {
    #[serde(rename = "invokeStart")]
    pub invoke_start: f64,
    #[serde(rename = "httpDNSDomainLookUpStart")]
    pub http_dns_domain_look_up_start: f64,
    #[serde(rename = "httpDNSDomainLookUpEnd")]
    pub http_dns_domain_look_up_end: f64,
    #[serde(rename = "queueStart")]
    pub queue_start: f64,
    #[serde(rename = "queueEnd")]
    pub queue_end: f64,
    #[serde(rename = "redirectStart")]
    pub redirect_start: f64,
    #[serde(rename = "redirectEnd")]
    pub redirect_end: f64,
    #[serde(rename = "fetchStart")]
    pub fetch_start: f64,
    #[serde(rename = "domainLookUpStart")]
    pub domain_look_up_start: f64,
    #[serde(rename = "domainLookUpEnd")]
    pub domain_look_up_end: f64,
    #[serde(rename = "connectStart")]
    pub connect_start: f64,
    #[serde(rename = "connectEnd")]
    pub connect_end: f64,
    #[serde(rename = "SSLconnectionStart")]
    pub ssl_connection_start: f64,
    #[serde(rename = "SSLconnectionEnd")]
    pub ssl_connection_end: f64,
    #[serde(rename = "requestStart")]
    pub request_start: f64,
    #[serde(rename = "requestEnd")]
    pub request_end: f64,
    #[serde(rename = "responseStart")]
    pub response_start: f64,
    #[serde(rename = "responseEnd")]
    pub response_end: f64,
    /// Smoothed RTT of the connection in ms (filled by the RTT work; 0 until then).
    #[serde(rename = "rtt")]
    pub rtt: f64,
    /// Chromium's effective connection type enum (0 = unknown until the estimator lands).
    #[serde(rename = "estimate_nettype")]
    pub estimate_nettype: i32,
    #[serde(rename = "httpRttEstimate")]
    pub http_rtt_estimate: f64,
    #[serde(rename = "transportRttEstimate")]
    pub transport_rtt_estimate: f64,
    #[serde(rename = "downstreamThroughputKbpsEstimate")]
    pub downstream_throughput_kbps_estimate: f64,
    /// This response's download rate: body bytes over `responseEnd - responseStart`, kbit/s.
    #[serde(rename = "throughputKbps")]
    pub throughput_kbps: f64,
    #[serde(rename = "peerIP")]
    pub peer_ip: String,
    #[serde(rename = "port")]
    pub port: u16,
    #[serde(rename = "socketReused")]
    pub socket_reused: bool,
    #[serde(rename = "sendBytesCount")]
    pub send_bytes_count: u64,
    /// Bytes of the response at HTTP level (the original's spelling).
    #[serde(rename = "receivedBytedCount")]
    pub received_byted_count: u64,
    /// `"http1.1"`, `"h2"`, `"quic"` or `"unknown"`.
    #[serde(rename = "protocol")]
    pub protocol: String,
    #[serde(rename = "usingHighPerformanceMode")]
    pub using_high_performance_mode: bool,
}

/// What this project measures beyond the original (kept out of the seed-shaped [`Profile`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileExtensions {
    /// The request head was completely written (ms since epoch; 0 if it never was).
    pub request_head_end: f64,
    /// The first interim (1xx) response arrived (0 if none).
    pub first_interim_response: f64,
    /// The status of the first interim response (0 if none).
    pub first_interim_status: u16,
    /// Whether `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The server answered before the request body was completely sent.
    pub early_response: bool,
    /// Body bytes written to the connection.
    pub body_bytes_sent: u64,
    /// Upload throughput over the body-send window (`requestEnd - requestHeadEnd`), kbit/s.
    pub upload_throughput_kbps: f64,
    /// The peer acknowledged the last byte of the request body (ms since epoch; 0 when the
    /// transport cannot tell or the body was not completely sent).
    pub body_acked_end: f64,
    /// How `bodyAckedEnd` was learnt: `"kernel"` (the kernel's TX_ACK timestamp), `"poll"` (the
    /// first reading of the TCP counters that saw everything acknowledged) or `""`.
    pub ack_source: String,
    /// What progress events count: `"acknowledged"` (bytes the peer acknowledged, from the TCP
    /// counters) or `"written"` (bytes handed to the kernel / TLS layer, when the transport
    /// cannot tell or the profile is off).
    pub progress_basis: String,
    /// This client's id of the connection that carried the request (1-based).
    pub connection_id: u64,
    /// Requests carried by that connection before this one.
    pub connection_requests_before: u64,
    /// How long the connection sat idle in the pool before this request reused it, in ms.
    pub idle_before_reuse_ms: f64,
    /// Connection attempts made to get the connection that carried the request (0 if reused).
    pub connect_attempts: u32,
    /// Connections opened for this upload because a reused one proved dead (0 or 1).
    pub stale_connection_retries: u32,
    /// `"TLSv1.3"` / `"TLSv1.2"` (empty on plain HTTP).
    pub tls_version: String,
    /// The negotiated cipher suite (empty on plain HTTP).
    pub cipher_suite: String,
    /// The ALPN protocol the server chose (empty if none).
    pub alpn: String,
    /// Which step of name resolution gave the address: `"none"` (reused connection),
    /// `"literal"`, `"cache"`, `"httpdns"`, `"httpdns-fallback"` (HTTPDNS failed, the resolver
    /// answered) or `"resolver"`.
    pub dns_source: String,
    /// Redirects followed before the final response (same- or cross-origin).
    pub redirects: u32,
    /// How the file's bytes reached the connection: `"sendfile"` (all zero-copy),
    /// `"sendfile+read"` (zero-copy, with some windows read into a buffer: not in the page cache,
    /// or `sendfile` refused midway), `"read"` (positional reads into a reusable buffer, then
    /// writes: TLS, HTTP/2, or zero copy off), or `"none"` (no file bytes were sent).
    pub body_path: String,
    /// File bytes sent with `sendfile(2)`.
    pub body_zero_copy_bytes: u64,
    /// File reads that had to wait for the disk and ran on the blocking pool (the page cache did
    /// not hold them).
    pub body_uncached_reads: u32,
    /// With `enableQuic`: why the upload did not go over QUIC and used TCP instead (the QUIC
    /// handshake failed or did not complete in time, the origin is remembered as broken, the URL
    /// is `http://`, ...); empty when QUIC carried it or was not asked for.
    pub quic_fallback: String,
}

/// Instants of one upload, recorded where the I/O happens. `None` = did not happen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    pub invoke_start: Option<Instant>,
    pub queue_start: Option<Instant>,
    pub queue_end: Option<Instant>,
    pub redirect_start: Option<Instant>,
    pub redirect_end: Option<Instant>,
    pub fetch_start: Option<Instant>,
    pub httpdns_start: Option<Instant>,
    pub httpdns_end: Option<Instant>,
    pub domain_lookup_start: Option<Instant>,
    pub domain_lookup_end: Option<Instant>,
    pub connect_start: Option<Instant>,
    pub connect_end: Option<Instant>,
    pub ssl_start: Option<Instant>,
    pub ssl_end: Option<Instant>,
    pub request_start: Option<Instant>,
    pub request_head_end: Option<Instant>,
    pub request_end: Option<Instant>,
    pub body_acked_end: Option<Instant>,
    pub first_interim: Option<Instant>,
    pub response_start: Option<Instant>,
    pub response_end: Option<Instant>,
}

/// Which step of name resolution answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DnsSource {
    /// No lookup was needed: a reused connection.
    #[default]
    None,
    /// The host is an IP literal.
    Literal,
    /// The client's DNS cache.
    Cache,
    /// HTTPDNS.
    HttpDns,
    /// The resolver, after HTTPDNS failed.
    HttpDnsFallback,
    /// The resolver.
    Resolver,
}

impl DnsSource {
    fn as_str(self) -> &'static str {
        match self {
            DnsSource::None => "none",
            DnsSource::Literal => "literal",
            DnsSource::Cache => "cache",
            DnsSource::HttpDns => "httpdns",
            DnsSource::HttpDnsFallback => "httpdns-fallback",
            DnsSource::Resolver => "resolver",
        }
    }
}

/// Facts about the connection and the exchange that the profile reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExchangeFacts {
    pub peer: Option<SocketAddr>,
    pub tls: bool,
    pub reused: bool,
    pub protocol: Protocol,
    pub sent_bytes: u64,
    pub body_bytes_sent: u64,
    pub received_bytes: u64,
    pub response_body_bytes: u64,
    pub body: BodyTransfer,
    pub first_interim_status: u16,
    pub expect_continue: bool,
    pub early_response: bool,
    pub connection_id: u64,
    pub connection_requests_before: u64,
    pub idle_before_reuse_ms: f64,
    pub connect_attempts: u32,
    pub stale_connection_retries: u32,
    pub tls_version: String,
    pub cipher_suite: String,
    pub alpn: String,
    pub dns_source: DnsSource,
    pub redirects: u32,
    pub rtt_ms: Option<f64>,
    pub ack_source: Option<crate::call::AckSource>,
    pub progress_acknowledged: bool,
    pub quality: crate::network_quality::QualityEstimate,
    /// Why `enableQuic` did not use QUIC, if it did not.
    pub quic_fallback: Option<String>,
}

fn ms(t: Option<Instant>) -> f64 {
    t.map(clock::epoch_ms).unwrap_or(0.0)
}

impl Timeline {
    /// Compute the original's profile, applying its rules for phases that did not happen.
    pub(crate) fn profile(&self, facts: &ExchangeFacts) -> Profile {
        let fetch = ms(self.fetch_start);
        let or_fetch = |t: Option<Instant>| if t.is_some() { ms(t) } else { fetch };
        let (connect_start, connect_end) = if facts.reused {
            (fetch, fetch)
        } else {
            (or_fetch(self.connect_start), or_fetch(self.connect_end))
        };
        let (ssl_start, ssl_end) = match (facts.tls, facts.reused) {
            (false, _) => (0.0, 0.0),
            (true, true) => (fetch, fetch),
            (true, false) => (ms(self.ssl_start), ms(self.ssl_end)),
        };
        let (dns_start, dns_end) = match (self.domain_lookup_start, self.domain_lookup_end) {
            (Some(s), Some(e)) if !facts.reused => (ms(Some(s)), ms(Some(e))),
            _ => (fetch, fetch),
        };
        let throughput_kbps = match (self.response_start, self.response_end) {
            (Some(s), Some(e)) if e > s => {
                round3(facts.response_body_bytes as f64 * 8.0 / clock::ms_between(s, e))
            }
            _ => 0.0,
        };
        let queue_start = ms(self.queue_start);
        Profile {
            invoke_start: ms(self.invoke_start),
            http_dns_domain_look_up_start: ms(self.httpdns_start),
            http_dns_domain_look_up_end: ms(self.httpdns_end),
            queue_start,
            queue_end: if self.queue_end.is_some() {
                ms(self.queue_end)
            } else {
                queue_start
            },
            redirect_start: ms(self.redirect_start),
            redirect_end: ms(self.redirect_end),
            fetch_start: fetch,
            domain_look_up_start: dns_start,
            domain_look_up_end: dns_end,
            connect_start,
            connect_end,
            ssl_connection_start: ssl_start,
            ssl_connection_end: ssl_end,
            request_start: ms(self.request_start),
            request_end: ms(self.request_end),
            response_start: ms(self.response_start),
            response_end: ms(self.response_end),
            rtt: facts.rtt_ms.map(round3).unwrap_or(0.0),
            estimate_nettype: facts.quality.ect.as_number(),
            http_rtt_estimate: facts.quality.http_rtt_ms.map(round3).unwrap_or(0.0),
            transport_rtt_estimate: facts.quality.transport_rtt_ms.map(round3).unwrap_or(0.0),
            downstream_throughput_kbps_estimate: facts
                .quality
                .downstream_kbps
                .map(round3)
                .unwrap_or(0.0),
            throughput_kbps,
            peer_ip: facts.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            port: facts.peer.map(|p| p.port()).unwrap_or(0),
            socket_reused: facts.reused,
            send_bytes_count: facts.sent_bytes,
            received_byted_count: facts.received_bytes,
            protocol: facts.protocol.as_str().to_string(),
            using_high_performance_mode: facts.body.zero_copy_only(),
        }
    }

    /// The extensions object for the same upload.
    pub(crate) fn extensions(&self, facts: &ExchangeFacts) -> ProfileExtensions {
        let upload_throughput_kbps = match (self.request_head_end, self.request_end) {
            (Some(s), Some(e)) if e > s => {
                round3(facts.body_bytes_sent as f64 * 8.0 / clock::ms_between(s, e))
            }
            _ => 0.0,
        };
        ProfileExtensions {
            request_head_end: ms(self.request_head_end),
            first_interim_response: ms(self.first_interim),
            first_interim_status: facts.first_interim_status,
            expect_continue: facts.expect_continue,
            early_response: facts.early_response,
            body_bytes_sent: facts.body_bytes_sent,
            upload_throughput_kbps,
            body_acked_end: ms(self.body_acked_end),
            ack_source: match facts.ack_source {
                Some(crate::call::AckSource::Kernel) => "kernel",
                Some(crate::call::AckSource::Poll) => "poll",
                None => "",
            }
            .to_string(),
            progress_basis: if facts.progress_acknowledged {
                "acknowledged"
            } else {
                "written"
            }
            .to_string(),
            connection_id: facts.connection_id,
            connection_requests_before: facts.connection_requests_before,
            idle_before_reuse_ms: round3(facts.idle_before_reuse_ms),
            connect_attempts: facts.connect_attempts,
            stale_connection_retries: facts.stale_connection_retries,
            tls_version: facts.tls_version.clone(),
            cipher_suite: facts.cipher_suite.clone(),
            alpn: facts.alpn.clone(),
            dns_source: facts.dns_source.as_str().to_string(),
            redirects: facts.redirects,
            body_path: facts.body.path().to_string(),
            body_zero_copy_bytes: facts.body.zero_copy_bytes,
            body_uncached_reads: facts.body.uncached_reads,
            quic_fallback: facts.quic_fallback.clone().unwrap_or_default(),
        }
    }
}

/// How the file's bytes went out: `usingHighPerformanceMode` and the `body*` extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BodyTransfer {
    /// File bytes sent by `sendfile(2)`.
    pub zero_copy_bytes: u64,
    /// File bytes read into a buffer and written from it.
    pub copied_bytes: u64,
    /// Reads that ran on the blocking pool because the page cache lacked the data.
    pub uncached_reads: u32,
    /// Why `sendfile` was given up midway (the kernel's refusal), if it was.
    pub zero_copy_refused: Option<String>,
}

impl BodyTransfer {
    /// The whole file went by the zero-copy path (`usingHighPerformanceMode`).
    pub(crate) fn zero_copy_only(&self) -> bool {
        self.zero_copy_bytes > 0 && self.copied_bytes == 0
    }

    pub(crate) fn path(&self) -> &'static str {
        match (self.zero_copy_bytes > 0, self.copied_bytes > 0) {
            (true, false) => "sendfile",
            (true, true) => "sendfile+read",
            (false, true) => "read",
            (false, false) => "none",
        }
    }
}

fn round3(x: f64) -> f64 {
    clock::round_to_micros(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every field name of the original's profile table, in its order.
    const ORIGINAL_FIELDS: [&str; 31] = [
        "invokeStart",
        "httpDNSDomainLookUpStart",
        "httpDNSDomainLookUpEnd",
        "queueStart",
        "queueEnd",
        "redirectStart",
        "redirectEnd",
        "fetchStart",
        "domainLookUpStart",
        "domainLookUpEnd",
        "connectStart",
        "connectEnd",
        "SSLconnectionStart",
        "SSLconnectionEnd",
        "requestStart",
        "requestEnd",
        "responseStart",
        "responseEnd",
        "rtt",
        "estimate_nettype",
        "httpRttEstimate",
        "transportRttEstimate",
        "downstreamThroughputKbpsEstimate",
        "throughputKbps",
        "peerIP",
        "port",
        "socketReused",
        "sendBytesCount",
        "receivedBytedCount",
        "protocol",
        "usingHighPerformanceMode",
    ];

    #[test]
    fn json_has_exactly_the_original_fields() {
        let json = serde_json::to_value(Profile::default()).unwrap();
        let obj = json.as_object().unwrap();
        for name in ORIGINAL_FIELDS {
            assert!(obj.contains_key(name), "missing {name}");
        }
        assert_eq!(obj.len(), 31);
    }

    fn at(base: Instant, ms: u64) -> Option<Instant> {
        Some(base + Duration::from_millis(ms))
    }

    #[test]
    fn fresh_tls_connection_keeps_measured_phases() {
        let b = Instant::now();
        let t = Timeline {
            invoke_start: at(b, 0),
            queue_start: at(b, 1),
            queue_end: at(b, 1),
            fetch_start: at(b, 2),
            domain_lookup_start: at(b, 2),
            domain_lookup_end: at(b, 3),
            connect_start: at(b, 3),
            ssl_start: at(b, 4),
            ssl_end: at(b, 6),
            connect_end: at(b, 6),
            request_start: at(b, 7),
            request_head_end: at(b, 7),
            request_end: at(b, 9),
            response_start: at(b, 10),
            response_end: at(b, 12),
            ..Default::default()
        };
        let facts = ExchangeFacts {
            tls: true,
            response_body_bytes: 1000,
            ..Default::default()
        };
        let p = t.profile(&facts);
        let order = [
            p.invoke_start,
            p.queue_start,
            p.queue_end,
            p.fetch_start,
            p.domain_look_up_start,
            p.domain_look_up_end,
            p.connect_start,
            p.ssl_connection_start,
            p.ssl_connection_end,
            p.connect_end,
            p.request_start,
            p.request_end,
            p.response_start,
            p.response_end,
        ];
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        assert!((p.ssl_connection_end - p.ssl_connection_start - 2.0).abs() < 0.01);
        // 1000 bytes in 2 ms = 8000 bits / 2 ms = 4000 kbit/s
        assert!(
            (p.throughput_kbps - 4000.0).abs() < 1.0,
            "{}",
            p.throughput_kbps
        );
        assert_eq!(p.protocol, "http1.1");
    }

    #[test]
    fn reused_connection_collapses_connect_phases_to_fetch_start() {
        let b = Instant::now();
        let t = Timeline {
            fetch_start: at(b, 5),
            request_start: at(b, 6),
            ..Default::default()
        };
        let facts = ExchangeFacts {
            tls: true,
            reused: true,
            ..Default::default()
        };
        let p = t.profile(&facts);
        for v in [
            p.domain_look_up_start,
            p.domain_look_up_end,
            p.connect_start,
            p.connect_end,
            p.ssl_connection_start,
            p.ssl_connection_end,
        ] {
            assert_eq!(v, p.fetch_start);
        }
        assert!(p.socket_reused);
    }

    #[test]
    fn plain_http_has_zero_ssl_fields() {
        let b = Instant::now();
        let t = Timeline {
            fetch_start: at(b, 1),
            connect_start: at(b, 1),
            connect_end: at(b, 2),
            ..Default::default()
        };
        let p = t.profile(&ExchangeFacts::default());
        assert_eq!((p.ssl_connection_start, p.ssl_connection_end), (0.0, 0.0));
        assert_eq!(p.domain_look_up_start, p.fetch_start);
    }
}
