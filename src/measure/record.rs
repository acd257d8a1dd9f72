//! One upload's measurements: the [`Timeline`] and the facts beside it, folded in from the
//! records the layers below return, and turned into [`Profile`] and [`ProfileExtensions`] at the
//! end.
//!
//! `call` owns one [`UploadRecord`] per upload and tells it what happened, in order: queued,
//! a hop's fetch started, resolved, connected, which connection carried the request, exchanged.
//! Nothing else writes a stamp; nothing else decides what a missing stamp means.

use std::sync::Arc;
use std::time::Instant;

use super::clock;
use super::profile::{Profile, ProfileExtensions, Protocol};
use super::quality::{NetworkQualityEstimator, QualityEstimate};
use super::stamps::{
    ConnectStamps, ConnectionInfo, ConnectionUse, DnsSource, ExchangeReport, ProxyFacts,
    ProxyStamps, RaceReason, RaceReport, RaceWinner, ResolveStamps,
};
use super::timeline::Timeline;
use super::trace::UploadTrace;

/// What is measured of one upload.
#[derive(Debug, Clone)]
pub(crate) struct UploadRecord {
    timeline: Timeline,
    /// The current hop's URL is `https://`.
    tls: bool,
    dns_source: DnsSource,
    connection: Option<ConnectionUse>,
    stale_connection_retries: u32,
    exchange: Option<ExchangeReport>,
    redirects: u32,
    quic_fallback: Option<String>,
    /// How `enableQuic` chose this hop's transport.
    race: Option<RaceReport>,
    /// The steps through a proxy of the connection this hop opened (none on a reused one).
    proxy_stamps: Option<ProxyStamps>,
    /// Where each fold is also reported as it happens (feature `tracing`; nothing without it).
    trace: UploadTrace,
}

impl UploadRecord {
    /// An upload invoked at `invoke_start`.
    pub(crate) fn new(invoke_start: Instant) -> UploadRecord {
        UploadRecord {
            timeline: Timeline::new(invoke_start),
            tls: false,
            dns_source: DnsSource::None,
            connection: None,
            stale_connection_retries: 0,
            exchange: None,
            redirects: 0,
            quic_fallback: None,
            race: None,
            proxy_stamps: None,
            trace: UploadTrace::none(),
        }
    }

    /// Report every fold from now on to `trace` too (its span is the upload's), starting with
    /// `invokeStart`.
    pub(crate) fn traced(mut self, trace: UploadTrace) -> UploadRecord {
        self.trace = trace;
        self.trace.invoked();
        self
    }

    /// Waited from `start` to `end` for the client's concurrency permit.
    pub(crate) fn queued(&mut self, start: Instant, end: Instant) {
        self.timeline.queued(start, end);
        self.trace.queued(start, end);
    }

    /// A request begins at `at`: the upload, or a redirect hop to an origin with or without
    /// `tls`. The facts of an earlier hop are dropped; its stamps were forgotten when the
    /// redirect was followed.
    pub(crate) fn fetch_started(&mut self, at: Instant, tls: bool) {
        self.timeline.fetch_started(at);
        self.trace.fetch_started(at);
        self.tls = tls;
        self.dns_source = DnsSource::None;
        self.connection = None;
        self.stale_connection_retries = 0;
        self.exchange = None;
        self.quic_fallback = None;
        self.race = None;
        self.proxy_stamps = None;
    }

    /// Name resolution returned: what it stamped, and which step answered.
    pub(crate) fn resolved(&mut self, stamps: &ResolveStamps, source: DnsSource) {
        self.timeline.resolved(stamps);
        self.trace.resolved(stamps);
        self.dns_source = source;
    }

    /// A new connection was opened.
    pub(crate) fn connected(&mut self, stamps: &ConnectStamps) {
        self.timeline.connected(stamps);
        self.trace.connected(stamps);
        self.proxy_stamps = stamps.proxy;
    }

    /// The request goes on this connection; `retries`: connections given up for this hop
    /// because they proved dead or refused the request unprocessed.
    pub(crate) fn uses_connection(&mut self, used: ConnectionUse, retries: u32) {
        if used.reused {
            self.dns_source = DnsSource::None;
        }
        self.trace.uses_connection(&used);
        self.connection = Some(used);
        self.stale_connection_retries = retries;
    }

    /// The exchange completed and returned what it measured.
    pub(crate) fn exchanged(&mut self, report: ExchangeReport) {
        if let (Some(ready), Some(true)) = (
            report.stream_ready_at,
            self.connection.as_ref().map(|c| c.reused),
        ) {
            let fetch_start = self.timeline.fetch_start;
            self.timeline.stream_slot_waited(ready);
            if self.timeline.fetch_start != fetch_start {
                self.trace.stream_slot_waited(ready);
            }
        }
        self.timeline.exchanged(&report.stamps);
        self.trace.exchanged(&report.stamps);
        self.exchange = Some(report);
    }

    /// The connection proved dead (or refused the request unprocessed): its phases are
    /// forgotten, the next one records its own.
    pub(crate) fn forget_connection(&mut self) {
        self.timeline.forget_connection();
        self.proxy_stamps = None;
        self.trace.retry();
    }

    /// A transport that was tried and not used (a failed QUIC attempt): its connect phases are
    /// forgotten, its name resolution stands.
    #[cfg_attr(not(feature = "quic"), allow(dead_code))]
    pub(crate) fn forget_connect(&mut self) {
        self.timeline.forget_connect();
        self.proxy_stamps = None;
    }

    /// Why `enableQuic` did not carry this hop. A hop whose race QUIC had won but whose QUIC
    /// connection then could not take it (and no new one could be made) went over TCP after
    /// all: the race's result says so.
    pub(crate) fn quic_fell_back(&mut self, why: String) {
        self.trace.quic_fell_back(&why);
        self.quic_fallback = Some(why);
        if let Some(race) = self.race.as_mut().filter(|r| r.winner == RaceWinner::Quic) {
            race.winner = RaceWinner::Tcp;
            race.reason = RaceReason::Failed;
        }
    }

    /// How `enableQuic` chose the hop's transport: QUIC raced against TCP (or why there was no
    /// race), with both attempts' stamps.
    pub(crate) fn raced(&mut self, report: RaceReport) {
        self.race = Some(report);
    }

    /// The hop's response was a redirect that is followed.
    pub(crate) fn redirect_followed(&mut self) {
        self.redirects += 1;
        self.timeline.redirect_followed();
        self.trace.redirect_followed(self.redirects);
    }

    /// Redirects followed so far.
    pub(crate) fn redirects(&self) -> u32 {
        self.redirects
    }

    /// The final response is in; `same_origin`: every hop stayed on the first origin.
    pub(crate) fn redirects_done(&mut self, same_origin: bool) {
        self.timeline.redirects_done(same_origin);
        self.trace
            .redirects_done(self.timeline.redirect_start, self.timeline.redirect_end);
    }

    /// Whether the exchange sent `Expect: 100-continue`.
    pub(crate) fn expect_continue(&self) -> bool {
        self.exchange.as_ref().is_some_and(|e| e.expect_continue)
    }

    /// Feed this upload's observations to the client's network quality estimator and read the
    /// estimates back (`docs/profile.md`, "Network quality", defines each observation):
    ///
    /// - HTTP RTT: `100 Continue` − head written, when the server sent one (a pure round trip
    ///   plus the server's reaction, no body in between); otherwise `responseStart −
    ///   requestEnd`, the wait for the answer after the last body byte was written (server time
    ///   included, as Chromium's HTTP RTT includes it);
    /// - transport RTT: the kernel's smoothed RTT when the response arrived (`rtt`);
    /// - downstream throughput: response bodies of at least 32 KiB, over
    ///   `responseEnd − responseStart`.
    pub(crate) fn observe_quality(
        &self,
        estimator: &mut NetworkQualityEstimator,
        now: Instant,
    ) -> QualityEstimate {
        let t = &self.timeline.exchange;
        let report = self.exchange.as_ref();
        let first_interim_status = report.map_or(0, |r| r.first_interim_status);
        let http_rtt = match (
            t.request_head_end,
            t.first_interim_response,
            t.request_end,
            t.response_start,
        ) {
            (Some(head), Some(interim), _, _) if first_interim_status == 100 && interim >= head => {
                Some(interim - head)
            }
            (_, _, Some(end), Some(start)) if start >= end => Some(start - end),
            _ => None,
        };
        if let Some(rtt) = http_rtt {
            estimator.add_http_rtt(rtt.as_secs_f64() * 1000.0, now);
        }
        if let Some(rtt) = report.and_then(|r| r.rtt_ms) {
            estimator.add_transport_rtt(rtt, now);
        }
        if let (Some(start), Some(end)) = (t.response_start, t.response_end) {
            estimator.add_downstream(
                report.map_or(0, |r| r.response_body_bytes),
                end.saturating_duration_since(start),
                now,
            );
        }
        estimator.current(now)
    }

    /// The original's profile, applying its rules for phases that did not happen.
    pub(crate) fn profile(&self, quality: &QualityEstimate) -> Profile {
        let t = &self.timeline;
        let x = &t.exchange;
        let empty = ExchangeReport::default();
        let report = self.exchange.as_ref().unwrap_or(&empty);
        let reused = self.reused();
        let fetch = ms(t.fetch_start);
        let or_fetch = |s: Option<Instant>| if s.is_some() { ms(s) } else { fetch };
        let (connect_start, connect_end) = if reused {
            (fetch, fetch)
        } else {
            (
                or_fetch(t.connect.connect_start),
                or_fetch(t.connect.connect_end),
            )
        };
        let (ssl_start, ssl_end) = match (self.tls, reused) {
            (false, _) => (0.0, 0.0),
            (true, true) => (fetch, fetch),
            (true, false) => (
                ms(t.connect.ssl_connection_start),
                ms(t.connect.ssl_connection_end),
            ),
        };
        let (dns_start, dns_end) =
            match (t.resolve.domain_look_up_start, t.resolve.domain_look_up_end) {
                (Some(s), Some(e)) if !reused => (ms(Some(s)), ms(Some(e))),
                _ => (fetch, fetch),
            };
        let throughput_kbps = match (x.response_start, x.response_end) {
            (Some(s), Some(e)) if e > s => {
                round3(report.response_body_bytes as f64 * 8.0 / clock::ms_between(s, e))
            }
            _ => 0.0,
        };
        let queue_start = ms(t.queue_start);
        let peer = self.connection.as_ref().map(|c| c.info.peer);
        Profile {
            invoke_start: ms(t.invoke_start),
            http_dns_domain_look_up_start: ms(t.resolve.http_dns_domain_look_up_start),
            http_dns_domain_look_up_end: ms(t.resolve.http_dns_domain_look_up_end),
            queue_start,
            queue_end: if t.queue_end.is_some() {
                ms(t.queue_end)
            } else {
                queue_start
            },
            redirect_start: ms(t.redirect_start),
            redirect_end: ms(t.redirect_end),
            fetch_start: fetch,
            domain_look_up_start: dns_start,
            domain_look_up_end: dns_end,
            connect_start,
            connect_end,
            ssl_connection_start: ssl_start,
            ssl_connection_end: ssl_end,
            request_start: ms(x.request_start),
            request_end: ms(x.request_end),
            response_start: ms(x.response_start),
            response_end: ms(x.response_end),
            rtt: report.rtt_ms.map(round3).unwrap_or(0.0),
            estimate_nettype: quality.ect.as_number(),
            http_rtt_estimate: quality.http_rtt_ms.map(round3).unwrap_or(0.0),
            transport_rtt_estimate: quality.transport_rtt_ms.map(round3).unwrap_or(0.0),
            downstream_throughput_kbps_estimate: quality.downstream_kbps.map(round3).unwrap_or(0.0),
            throughput_kbps,
            peer_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            port: peer.map(|p| p.port()).unwrap_or(0),
            socket_reused: reused,
            send_bytes_count: report.send_bytes_count,
            received_byted_count: report.received_byted_count,
            protocol: self.protocol().as_str().to_string(),
            using_high_performance_mode: report.body.zero_copy_only(),
        }
    }

    /// The extensions object for the same upload.
    pub(crate) fn extensions(&self) -> ProfileExtensions {
        let x = &self.timeline.exchange;
        let empty = ExchangeReport::default();
        let report = self.exchange.as_ref().unwrap_or(&empty);
        let upload_throughput_kbps = match (x.request_head_end, x.request_end) {
            (Some(s), Some(e)) if e > s => {
                round3(report.body_bytes_sent as f64 * 8.0 / clock::ms_between(s, e))
            }
            _ => 0.0,
        };
        let connection = self.connection.as_ref();
        let info: Option<&Arc<ConnectionInfo>> = connection.map(|c| &c.info);
        let reused = self.reused();
        ProfileExtensions {
            request_head_end: ms(x.request_head_end),
            first_interim_response: ms(x.first_interim_response),
            first_interim_status: report.first_interim_status,
            expect_continue: report.expect_continue,
            early_response: report.early_response,
            body_bytes_sent: report.body_bytes_sent,
            request_header_bytes_sent: report.request_header_bytes,
            request_framing_bytes: report.request_framing_bytes,
            response_header_bytes_received: report.response_header_bytes,
            response_body_bytes_received: report.response_body_bytes,
            response_framing_bytes: report.response_framing_bytes,
            upload_throughput_kbps,
            body_acked_end: ms(x.body_acked_end),
            ack_source: report.ack_source.map_or("", |s| s.as_str()).to_string(),
            progress_basis: if report.progress_acknowledged {
                "acknowledged"
            } else {
                "written"
            }
            .to_string(),
            connection_id: info.map_or(0, |i| i.id),
            local_address: info
                .and_then(|i| i.local)
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            local_port: info.and_then(|i| i.local).map_or(0, |a| a.port()),
            connection_requests_before: connection.map_or(0, |c| c.requests_before),
            idle_before_reuse_ms: round3(connection.map_or(0.0, |c| c.idle_before_reuse_ms)),
            connect_attempts: match info {
                Some(i) if !reused => i.attempts,
                _ => 0,
            },
            stale_connection_retries: self.stale_connection_retries,
            tls_version: info.map(|i| i.tls_version.clone()).unwrap_or_default(),
            cipher_suite: info.map(|i| i.cipher_suite.clone()).unwrap_or_default(),
            alpn: info.map(|i| i.alpn.clone()).unwrap_or_default(),
            dns_source: self.dns_source.as_str().to_string(),
            redirects: self.redirects,
            body_path: report.body.path().to_string(),
            body_zero_copy_bytes: report.body.zero_copy_bytes,
            body_uncached_reads: report.body.uncached_reads,
            quic_fallback: self.quic_fallback.clone().unwrap_or_default(),
            ..self.proxy_extensions(info.and_then(|i| i.proxy.as_ref()), reused)
        }
    }

    /// The proxy's fields of the extensions (empty / 0 without a proxy; its stamps 0 on a
    /// reused connection), with the race's.
    fn proxy_extensions(&self, facts: Option<&ProxyFacts>, reused: bool) -> ProfileExtensions {
        let Some(facts) = facts else {
            return self.race_extensions();
        };
        let stamps = match self.proxy_stamps {
            Some(stamps) if !reused => stamps,
            _ => ProxyStamps::default(),
        };
        ProfileExtensions {
            is_proxy_connection: true,
            proxy_kind: facts.kind.to_string(),
            proxy_url: facts.url.clone(),
            proxy_mode: facts.mode.to_string(),
            proxy_connect_end: ms(stamps.proxy_connect_end),
            proxy_ssl_connection_start: ms(stamps.proxy_ssl_connection_start),
            proxy_ssl_connection_end: ms(stamps.proxy_ssl_connection_end),
            proxy_tunnel_start: ms(stamps.proxy_tunnel_start),
            proxy_tunnel_end: ms(stamps.proxy_tunnel_end),
            proxy_connect_status: facts.connect_status,
            proxy_socks_auth: facts.socks_auth.to_string(),
            origin_resolved_by: facts.origin_resolved_by.to_string(),
            proxy_tls_version: facts.tls_version.clone(),
            ..self.race_extensions()
        }
    }

    /// The race's fields of the extensions (all empty / 0 without `enableQuic`).
    fn race_extensions(&self) -> ProfileExtensions {
        let Some(race) = &self.race else {
            return ProfileExtensions::default();
        };
        let (q, t) = (&race.quic, &race.tcp);
        ProfileExtensions {
            race_winner: race.winner.as_str().to_string(),
            race_reason: race.reason.as_str().to_string(),
            race_head_start_ms: race
                .head_start
                .map_or(0.0, |(d, _)| round3(d.as_secs_f64() * 1000.0)),
            race_head_start_basis: race
                .head_start
                .map_or("", |(_, basis)| basis.as_str())
                .to_string(),
            quic_attempt_start: ms(q.start),
            quic_server_hello: ms(q.server_hello),
            quic_attempt_end: ms(q.end),
            quic_attempt_outcome: q.outcome.as_str().to_string(),
            quic_attempt_error: q.error.clone().unwrap_or_default(),
            tcp_attempt_start: ms(t.start),
            tcp_connect_end: ms(t.connect_end),
            tcp_tls_end: ms(t.tls_end),
            tcp_attempt_outcome: t.outcome.as_str().to_string(),
            tcp_attempt_error: t.error.clone().unwrap_or_default(),
            ..ProfileExtensions::default()
        }
    }

    fn reused(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| c.reused)
    }

    fn protocol(&self) -> Protocol {
        self.connection
            .as_ref()
            .map_or(Protocol::Http11, |c| c.protocol)
    }
}

fn ms(t: Option<Instant>) -> f64 {
    t.map(clock::epoch_ms).unwrap_or(0.0)
}

fn round3(x: f64) -> f64 {
    clock::round_to_micros(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stamps::ExchangeStamps;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn at(base: Instant, ms: u64) -> Option<Instant> {
        Some(base + Duration::from_millis(ms))
    }

    fn connection(reused: bool, tls: bool) -> ConnectionUse {
        let peer: SocketAddr = "127.0.0.1:443".parse().unwrap();
        ConnectionUse {
            info: Arc::new(ConnectionInfo {
                id: 1,
                peer,
                local: Some("127.0.0.1:50000".parse().unwrap()),
                attempts: 1,
                tls_version: if tls { "TLSv1.3".into() } else { String::new() },
                cipher_suite: String::new(),
                alpn: String::new(),
                proxy: None,
            }),
            protocol: Protocol::Http11,
            reused,
            requests_before: 0,
            idle_before_reuse_ms: 0.0,
        }
    }

    #[test]
    fn fresh_tls_connection_keeps_measured_phases() {
        let b = Instant::now();
        let mut r = UploadRecord::new(b);
        r.queued(b + Duration::from_millis(1), b + Duration::from_millis(1));
        r.fetch_started(b + Duration::from_millis(2), true);
        r.resolved(
            &ResolveStamps {
                domain_look_up_start: at(b, 2),
                domain_look_up_end: at(b, 3),
                ..Default::default()
            },
            DnsSource::Resolver,
        );
        r.connected(&ConnectStamps {
            connect_start: at(b, 3),
            ssl_connection_start: at(b, 4),
            ssl_connection_end: at(b, 6),
            connect_end: at(b, 6),
            proxy: None,
        });
        r.uses_connection(connection(false, true), 0);
        r.exchanged(ExchangeReport {
            stamps: ExchangeStamps {
                request_start: at(b, 7),
                request_head_end: at(b, 7),
                request_end: at(b, 9),
                response_start: at(b, 10),
                response_end: at(b, 12),
                ..Default::default()
            },
            response_body_bytes: 1000,
            ..Default::default()
        });
        let p = r.profile(&QualityEstimate::default());
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
        let e = r.extensions();
        assert_eq!(e.dns_source, "resolver");
        assert_eq!(e.connect_attempts, 1);
        assert_eq!(e.tls_version, "TLSv1.3");
    }

    #[test]
    fn byte_counts_and_the_local_address_are_in_the_extensions() {
        let b = Instant::now();
        let mut r = UploadRecord::new(b);
        assert_eq!(
            (
                r.extensions().local_address.as_str(),
                r.extensions().local_port
            ),
            ("", 0),
            "no connection: unknown"
        );
        r.fetch_started(b, false);
        r.uses_connection(connection(true, false), 0);
        r.exchanged(ExchangeReport {
            send_bytes_count: 1000,
            request_header_bytes: 150,
            body_bytes_sent: 820,
            request_framing_bytes: 30,
            received_byted_count: 300,
            response_header_bytes: 90,
            response_body_bytes: 200,
            response_framing_bytes: 10,
            ..Default::default()
        });
        let (p, e) = (r.profile(&QualityEstimate::default()), r.extensions());
        assert_eq!((p.send_bytes_count, p.received_byted_count), (1000, 300));
        assert_eq!(
            (
                e.request_header_bytes_sent,
                e.body_bytes_sent,
                e.request_framing_bytes
            ),
            (150, 820, 30)
        );
        assert_eq!(
            (
                e.response_header_bytes_received,
                e.response_body_bytes_received,
                e.response_framing_bytes
            ),
            (90, 200, 10)
        );
        // A reused connection reports the address it was opened with.
        assert_eq!(
            (e.local_address.as_str(), e.local_port),
            ("127.0.0.1", 50000)
        );
        let json = serde_json::to_value(&e).unwrap();
        for name in [
            "localAddress",
            "localPort",
            "requestHeaderBytesSent",
            "bodyBytesSent",
            "requestFramingBytes",
            "responseHeaderBytesReceived",
            "responseBodyBytesReceived",
            "responseFramingBytes",
        ] {
            assert!(json.get(name).is_some(), "{name} missing from {json}");
        }
    }

    #[test]
    fn reused_connection_collapses_connect_phases_to_fetch_start() {
        let b = Instant::now();
        let mut r = UploadRecord::new(b);
        r.fetch_started(b + Duration::from_millis(5), true);
        r.uses_connection(connection(true, true), 0);
        r.exchanged(ExchangeReport {
            stamps: ExchangeStamps {
                request_start: at(b, 6),
                ..Default::default()
            },
            ..Default::default()
        });
        let p = r.profile(&QualityEstimate::default());
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
        let e = r.extensions();
        assert_eq!(e.connect_attempts, 0);
        assert_eq!(e.dns_source, "none");
    }

    #[test]
    fn plain_http_has_zero_ssl_fields() {
        let b = Instant::now();
        let mut r = UploadRecord::new(b);
        r.fetch_started(b + Duration::from_millis(1), false);
        r.connected(&ConnectStamps {
            connect_start: at(b, 1),
            connect_end: at(b, 2),
            ..Default::default()
        });
        let p = r.profile(&QualityEstimate::default());
        assert_eq!((p.ssl_connection_start, p.ssl_connection_end), (0.0, 0.0));
        assert_eq!(p.domain_look_up_start, p.fetch_start);
    }

    #[test]
    fn a_slot_wait_on_a_reused_stream_is_queue_time() {
        let b = Instant::now();
        let mut r = UploadRecord::new(b);
        r.queued(b, b);
        r.fetch_started(b, true);
        r.uses_connection(connection(true, true), 0);
        r.exchanged(ExchangeReport {
            stream_ready_at: at(b, 20),
            ..Default::default()
        });
        let p = r.profile(&QualityEstimate::default());
        assert_eq!(p.queue_end, p.fetch_start);
        assert!((p.fetch_start - p.invoke_start - 20.0).abs() < 0.01);
    }

    #[test]
    fn same_origin_redirects_are_reported_and_cross_origin_ones_are_not() {
        for same_origin in [true, false] {
            let b = Instant::now();
            let mut r = UploadRecord::new(b);
            r.fetch_started(b + Duration::from_millis(1), false);
            r.exchanged(ExchangeReport {
                stamps: ExchangeStamps {
                    response_end: at(b, 4),
                    ..Default::default()
                },
                ..Default::default()
            });
            r.redirect_followed();
            r.fetch_started(b + Duration::from_millis(5), false);
            r.redirects_done(same_origin);
            let p = r.profile(&QualityEstimate::default());
            let e = r.extensions();
            assert_eq!(e.redirects, 1);
            if same_origin {
                assert!((p.redirect_end - p.redirect_start - 3.0).abs() < 0.01);
            } else {
                assert_eq!((p.redirect_start, p.redirect_end), (0.0, 0.0));
            }
        }
    }

    #[test]
    fn the_race_is_in_the_extensions_and_a_later_fallback_turns_it_to_tcp() {
        use crate::measure::stamps::{
            AttemptOutcome, HeadStartBasis, QuicAttemptStamps, TcpAttemptStamps,
        };
        let b = Instant::now();
        let mut r = UploadRecord::new(b);
        r.fetch_started(b, true);
        assert_eq!(r.extensions().race_winner, "", "no race without enableQuic");
        r.raced(RaceReport {
            winner: RaceWinner::Quic,
            reason: RaceReason::Faster,
            head_start: Some((Duration::from_millis(25), HeadStartBasis::OriginRtt)),
            quic: QuicAttemptStamps {
                start: at(b, 1),
                server_hello: at(b, 20),
                end: at(b, 30),
                outcome: AttemptOutcome::Connected,
                error: None,
            },
            tcp: TcpAttemptStamps {
                start: at(b, 26),
                outcome: AttemptOutcome::Closed,
                ..Default::default()
            },
        });
        let e = r.extensions();
        assert_eq!(
            (e.race_winner.as_str(), e.race_reason.as_str()),
            ("quic", "quic-faster")
        );
        assert_eq!(e.race_head_start_ms, 25.0);
        assert_eq!(e.race_head_start_basis, "origin-rtt");
        assert!((e.quic_attempt_end - e.quic_attempt_start - 29.0).abs() < 1e-6);
        assert!((e.quic_server_hello - e.quic_attempt_start - 19.0).abs() < 1e-6);
        assert_eq!(e.quic_attempt_outcome, "connected");
        assert_eq!(e.tcp_attempt_outcome, "closed");
        assert_eq!((e.tcp_connect_end, e.tcp_tls_end), (0.0, 0.0));
        assert_eq!(e.quic_fallback, "");

        // QUIC won, but its connection then could not take the stream and none could be made:
        // TCP carried the hop after all.
        r.quic_fell_back("the QUIC handshake with 10.0.0.1:443 failed".into());
        let e = r.extensions();
        assert_eq!(
            (e.race_winner.as_str(), e.race_reason.as_str()),
            ("tcp", "quic-failed")
        );

        // The next hop starts afresh.
        r.fetch_started(b + Duration::from_millis(50), true);
        assert_eq!(r.extensions().race_winner, "");
    }
}
