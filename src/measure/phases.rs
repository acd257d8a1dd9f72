//! One upload's phases, from its [`Profile`] and [`ProfileExtensions`]: the one phase model
//! that the CLI's waterfall (`uploadfile upload`, `uploadfile demo`), `uploadfile bench` (its
//! table, JSON and SVG) and the benches that compare phases with other clients all use.
//!
//! The profile is a list of moments (`docs/profile.md` says where each is taken); a phase is
//! the span between two of them. Which two is a choice, and making it in several places made
//! the same upload read differently in different tools. This module makes it once:
//!
//! | [`Phase`] | from | to |
//! |---|---|---|
//! | queue | `queueStart` | `queueEnd` |
//! | DNS | `domainLookUpStart` | `domainLookUpEnd` |
//! | connect | `connectStart` | through a proxy `profileExtensions.proxyConnectEnd`; else `SSLconnectionStart` over TLS on TCP; `connectEnd` on plain TCP and over QUIC |
//! | proxy | `profileExtensions.proxyConnectEnd` | `proxyTunnelEnd` (the tunnel is open), or `proxySSLconnectionEnd` for absolute-form requests to an `https://` proxy |
//! | TLS | `SSLconnectionStart` | `SSLconnectionEnd` (inside connect over QUIC) |
//! | request sent | `requestStart` | `requestEnd` |
//! | acknowledged | `requestEnd` | `profileExtensions.bodyAckedEnd` |
//! | server | `bodyAckedEnd` where known, else `requestEnd` | `responseStart` |
//! | response | `responseStart` | `responseEnd` |
//!
//! and [`Phases::total`] is `invokeStart → responseEnd`, the whole upload.
//!
//! # The rules, and why
//!
//! The phases of one upload do not overlap and add up: each starts where the one before it ends,
//! except over gaps that no phase accounts for (checking the options, the pool lookup, between
//! `connectEnd` and `requestStart`) and the two overlaps named below. That is what lets a
//! waterfall draw them side by side and a reader add them up.
//!
//! - **`0` means "did not happen".** A phase with a bound at `0` has no span (`None`), nor has
//!   one whose end lies before its start: a phase is never negative. The profile's clock is
//!   monotonic, so on a real profile an end before its start comes only from the
//!   acknowledgement and the early response, which the rules below handle.
//! - **Connect ends where TLS starts over TCP.** The profile's `connectEnd` includes the TLS
//!   handshake (as in W3C Resource Timing and the original API), so `connectStart → connectEnd`
//!   would count the handshake twice, once in connect and once in TLS. On plain TCP there is no
//!   TLS and connect runs to `connectEnd`.
//! - **Over QUIC, connect is the QUIC handshake, with TLS inside it.** QUIC's handshake *is* the
//!   TLS 1.3 handshake (`connectStart = SSLconnectionStart`, `SSLconnectionEnd = connectEnd`):
//!   there is no transport part to split off. Connect is that handshake and TLS is the same span;
//!   this is the first overlap, and [`Phases::transport`] says when it applies.
//! - **Through a proxy, connect is the TCP connection to the proxy, and proxy is the rest of
//!   the way to a usable tunnel**: the TLS with an `https://` proxy and the `CONNECT` or SOCKS
//!   handshake. TLS with the origin (inside the tunnel) stays TLS. Without the extensions the
//!   proxy's steps cannot be told apart and connect runs as without a proxy.
//! - **A reused connection keeps its empty spans.** On a connection from the pool the profile
//!   puts DNS, connect and TLS at `fetchStart` (zero length). The model reports them as they are
//!   and says [`Phases::reused`]: a waterfall shows why they are empty, and statistics over many
//!   uploads leave them out (zeros would crowd the percentiles); that is counting, not a
//!   different phase.
//! - **DNS: whether a name was resolved, and whether that was timed** ([`DnsLookup`]). The DNS
//!   span times the resolver call only; an IP literal, a reused connection, the client's DNS
//!   cache and an HTTPDNS answer (timed by `httpDNSDomainLookUpStart/End`) all leave it empty at
//!   `fetchStart`. `profileExtensions.dnsSource` tells these apart; without it, the profile
//!   alone cannot tell a cache hit from an IP literal, and an empty span counts as no lookup.
//! - **Acknowledged runs from `requestEnd` to `bodyAckedEnd`.** `requestEnd` is when the last
//!   body byte was handed to the kernel (or sealed into TLS and written, or accepted by QUIC);
//!   `bodyAckedEnd` is when the peer acknowledged it. The difference is how far the send buffer
//!   ran ahead of the network. It exists where the transport can tell (HTTP/1.1 plain and TLS,
//!   HTTP/3; not HTTP/2, whose connection-wide counters cannot be split among streams), else
//!   [`Phases::acknowledgement_reported`] is `false`. When the acknowledgement was stamped
//!   before `requestEnd` (on loopback the kernel often processes the ACK before the write call
//!   has returned), the span is empty at `requestEnd`: the peer had every byte by then, and
//!   server starts at `requestEnd`, so that neither phase is negative and server does not reach
//!   back into request sent.
//! - **Server is the server's turn: from the moment it had the whole body to its first answer
//!   byte.** That moment is `bodyAckedEnd` where it is known: `requestEnd` only says the bytes
//!   left the application, and on a slow link the body is still on its way then, which is not the
//!   server's time. Elsewhere it is `requestEnd`, the best the client knows. When `bodyAckedEnd`
//!   was only seen after `responseStart` (over HTTP/3 the upload's task can notice the
//!   acknowledgement late), it cannot bound the server's turn: server starts at `requestEnd`,
//!   and acknowledged overlaps it. That is the second overlap.
//! - **An early response has no server span.** When the server answered before the body was
//!   completely sent (`responseStart` before `requestEnd`, or `requestEnd` is `0` because the
//!   last byte was never written), there was no server turn after the request;
//!   [`Phases::early_response`] says so.
//!
//! # Example
//!
//! ```
//! use uploadfile::phases::{phases, DnsLookup, Phase, Transport};
//! use uploadfile::{Profile, ProfileExtensions};
//!
//! // A fresh HTTPS upload over HTTP/1.1 (ms since the Unix epoch, as in any profile).
//! let t0 = 1_764_028_800_000.0;
//! let profile = Profile {
//!     invoke_start: t0,
//!     queue_start: t0 + 0.25,
//!     queue_end: t0 + 0.25,
//!     fetch_start: t0 + 0.5,
//!     domain_look_up_start: t0 + 0.5,
//!     domain_look_up_end: t0 + 1.0,
//!     connect_start: t0 + 1.0,
//!     ssl_connection_start: t0 + 1.25,
//!     ssl_connection_end: t0 + 3.0,
//!     connect_end: t0 + 3.0,
//!     request_start: t0 + 3.25,
//!     request_end: t0 + 10.0,
//!     response_start: t0 + 12.0,
//!     response_end: t0 + 12.5,
//!     protocol: "http1.1".into(),
//!     ..Profile::default()
//! };
//! let extensions = ProfileExtensions {
//!     body_acked_end: t0 + 10.5,
//!     dns_source: "resolver".into(),
//!     ..ProfileExtensions::default()
//! };
//!
//! let phases = phases(&profile, Some(&extensions));
//! // Connect ends where TLS starts; the server's turn starts when the peer had every byte.
//! assert_eq!(phases.duration(Phase::Connect), Some(0.25));
//! assert_eq!(phases.duration(Phase::Tls), Some(1.75));
//! assert_eq!(phases.duration(Phase::Acknowledged), Some(0.5));
//! assert_eq!(phases.span(Phase::Server), Some((t0 + 10.5, t0 + 12.0)));
//! assert_eq!(phases.total(), Some((t0, t0 + 12.5)));
//! assert_eq!((phases.transport, phases.dns), (Transport::TlsOverTcp, DnsLookup::Timed));
//! assert!(!phases.reused && phases.acknowledgement_reported && !phases.early_response);
//!
//! for (phase, span) in phases.iter() {
//!     match span {
//!         Some((start, end)) => println!("{:<14}{:>10.3} ms", phase.label(), end - start),
//!         None => println!("{:<14}{:>10}", phase.label(), "-"),
//!     }
//! }
//! ```

#![forbid(unsafe_code)]

use super::profile::{Profile, ProfileExtensions};

/// A span `(start, end)` in the profile's milliseconds since the Unix epoch, `start <= end`.
pub type Span = (f64, f64);

/// A phase of one upload, in the order the phases happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Waiting for the client's concurrency permit (and, over HTTP/2 and HTTP/3, for a stream).
    Queue,
    /// The resolver call for the connection's host.
    Dns,
    /// Opening the connection: TCP up to the TLS handshake, or the whole QUIC handshake;
    /// through a proxy, the TCP connection to the proxy.
    Connect,
    /// Through a proxy: from its TCP connection to the usable tunnel (TLS with an `https://`
    /// proxy, the `CONNECT` or SOCKS handshake).
    Proxy,
    /// The TLS handshake (over QUIC, the QUIC handshake itself).
    Tls,
    /// Writing the request: its first byte to its last body byte.
    RequestSent,
    /// From the last body byte written to the peer's acknowledgement of it.
    Acknowledged,
    /// The server's turn: from the whole body received to the first byte of its answer.
    Server,
    /// Reading the final response.
    Response,
}

impl Phase {
    /// How many phases there are.
    pub const COUNT: usize = 9;

    /// Every phase, in order.
    pub const ALL: [Phase; Phase::COUNT] = [
        Phase::Queue,
        Phase::Dns,
        Phase::Connect,
        Phase::Proxy,
        Phase::Tls,
        Phase::RequestSent,
        Phase::Acknowledged,
        Phase::Server,
        Phase::Response,
    ];

    /// Its position in [`Phase::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its key in JSON (camelCase): `queue`, `dns`, `connect`, `tls`, `requestSent`,
    /// `acknowledged`, `server`, `response`.
    pub const fn key(self) -> &'static str {
        match self {
            Phase::Queue => "queue",
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Proxy => "proxy",
            Phase::Tls => "tls",
            Phase::RequestSent => "requestSent",
            Phase::Acknowledged => "acknowledged",
            Phase::Server => "server",
            Phase::Response => "response",
        }
    }

    /// Its name for people: `queue`, `DNS`, `connect`, `TLS`, `request sent`, `acknowledged`,
    /// `server`, `response`.
    pub const fn label(self) -> &'static str {
        match self {
            Phase::Queue => "queue",
            Phase::Dns => "DNS",
            Phase::Connect => "connect",
            Phase::Proxy => "proxy",
            Phase::Tls => "TLS",
            Phase::RequestSent => "request sent",
            Phase::Acknowledged => "acknowledged",
            Phase::Server => "server",
            Phase::Response => "response",
        }
    }

    /// The profile fields that bound it, for explanations (`"requestStart -> requestEnd"`).
    pub const fn between(self) -> &'static str {
        match self {
            Phase::Queue => "queueStart -> queueEnd",
            Phase::Dns => "domainLookUpStart -> domainLookUpEnd",
            Phase::Connect => {
                "connectStart -> SSLconnectionStart, or connectEnd on plain http and QUIC \
                 (profileExtensions.proxyConnectEnd through a proxy)"
            }
            Phase::Proxy => {
                "profileExtensions.proxyConnectEnd -> proxyTunnelEnd, or proxySSLconnectionEnd \
                 for absolute-form requests to an https:// proxy"
            }
            Phase::Tls => "SSLconnectionStart -> SSLconnectionEnd",
            Phase::RequestSent => "requestStart -> requestEnd",
            Phase::Acknowledged => "requestEnd -> profileExtensions.bodyAckedEnd (where non-zero)",
            Phase::Server => {
                "profileExtensions.bodyAckedEnd (where non-zero, not after responseStart), \
                 else requestEnd -> responseStart"
            }
            Phase::Response => "responseStart -> responseEnd",
        }
    }
}

/// Whether a name was resolved for the upload's connection, and whether the DNS span timed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsLookup {
    /// No name was resolved: a reused connection or an IP literal (`dnsSource` `none` or
    /// `literal`; without extensions, any upload whose DNS span is empty at `fetchStart`).
    NotNeeded,
    /// A name was resolved without the resolver call the DNS span times: the client's DNS
    /// cache, or an HTTPDNS answer (`dnsSource` `cache`, `httpdns`). The span is empty.
    Untimed,
    /// The resolver was called: the DNS span is that call.
    Timed,
}

impl DnsLookup {
    /// Whether a name was resolved at all (timed or not).
    pub fn resolved(self) -> bool {
        self != DnsLookup::NotNeeded
    }
}

/// What carried the upload, as far as the connection phases are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP without TLS (`SSLconnectionStart` is `0`): no TLS span.
    PlainTcp,
    /// TLS over TCP: connect ends where TLS starts.
    TlsOverTcp,
    /// QUIC (`protocol` `"quic"`): connect is the QUIC handshake, TLS the same span inside it.
    Quic,
}

/// One upload's phases and the facts that explain a missing or empty one. Build it with
/// [`phases`].
#[derive(Debug, Clone, PartialEq)]
pub struct Phases {
    spans: [Option<Span>; Phase::COUNT],
    total: Option<Span>,
    /// `socketReused`: DNS, connect and TLS are empty spans at `fetchStart`.
    pub reused: bool,
    /// Whether a name was resolved, and whether the DNS span timed it.
    pub dns: DnsLookup,
    /// Plain TCP, TLS over TCP or QUIC.
    pub transport: Transport,
    /// The connection goes through a proxy (`profileExtensions.isProxyConnection`).
    pub proxied: bool,
    /// `bodyAckedEnd` is known (non-zero, and the body was completely sent). `false` over HTTP/2,
    /// without extensions, and wherever the transport could not tell.
    pub acknowledgement_reported: bool,
    /// The request was started but its body was not completely written (`requestEnd` is `0`).
    pub body_incomplete: bool,
    /// The server answered before the body was completely sent: no server span.
    pub early_response: bool,
}

impl Phases {
    /// The span of `phase`, or `None` when it did not happen.
    pub fn span(&self, phase: Phase) -> Option<Span> {
        self.spans[phase.index()]
    }

    /// The duration of `phase` in ms, or `None` when it did not happen.
    pub fn duration(&self, phase: Phase) -> Option<f64> {
        self.span(phase).map(|(start, end)| end - start)
    }

    /// `invokeStart → responseEnd`: the whole upload, the gaps between phases included.
    pub fn total(&self) -> Option<Span> {
        self.total
    }

    /// Every phase with its span, in order.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, Option<Span>)> + '_ {
        Phase::ALL
            .into_iter()
            .map(|phase| (phase, self.span(phase)))
    }
}

/// `(start, end)` when both happened (non-zero) and `end` is not before `start`.
fn span(start: f64, end: f64) -> Option<Span> {
    (start > 0.0 && end > 0.0 && end >= start).then_some((start, end))
}

/// The phases of one upload's `profile`; `extensions` add the acknowledgement and where the
/// name was resolved (see the module docs for every rule).
pub fn phases(profile: &Profile, extensions: Option<&ProfileExtensions>) -> Phases {
    let p = profile;
    let transport = if p.protocol == "quic" {
        Transport::Quic
    } else if p.ssl_connection_start > 0.0 {
        Transport::TlsOverTcp
    } else {
        Transport::PlainTcp
    };
    let proxy_connect_end = extensions.map_or(0.0, |e| e.proxy_connect_end);
    let proxy_ready =
        extensions.map_or(0.0, |e| e.proxy_tunnel_end.max(e.proxy_ssl_connection_end));
    let connect_end = match transport {
        _ if proxy_connect_end > 0.0 => proxy_connect_end,
        Transport::TlsOverTcp => p.ssl_connection_start,
        Transport::PlainTcp | Transport::Quic => p.connect_end,
    };
    let dns_span_empty =
        p.domain_look_up_start == p.fetch_start && p.domain_look_up_end == p.fetch_start;
    let dns = match extensions.map_or("", |e| e.dns_source.as_str()) {
        "none" | "literal" => DnsLookup::NotNeeded,
        "" if dns_span_empty => DnsLookup::NotNeeded,
        _ if dns_span_empty => DnsLookup::Untimed,
        _ => DnsLookup::Timed,
    };
    let acked = extensions
        .map(|e| e.body_acked_end)
        .filter(|&a| a > 0.0 && p.request_end > 0.0);
    let early_response =
        p.response_start > 0.0 && (p.request_end == 0.0 || p.response_start < p.request_end);
    // Stamped before requestEnd: acknowledged by then (an empty span, never a negative one).
    let acked_at = acked.map(|a| a.max(p.request_end));
    let server_start = match acked_at {
        Some(a) if a <= p.response_start => a,
        _ => p.request_end,
    };
    let mut spans = [None; Phase::COUNT];
    spans[Phase::Queue.index()] = span(p.queue_start, p.queue_end);
    spans[Phase::Dns.index()] = span(p.domain_look_up_start, p.domain_look_up_end);
    spans[Phase::Connect.index()] = span(p.connect_start, connect_end);
    spans[Phase::Proxy.index()] = span(proxy_connect_end, proxy_ready);
    spans[Phase::Tls.index()] = match transport {
        Transport::PlainTcp => None,
        Transport::TlsOverTcp | Transport::Quic => {
            span(p.ssl_connection_start, p.ssl_connection_end)
        }
    };
    spans[Phase::RequestSent.index()] = span(p.request_start, p.request_end);
    spans[Phase::Acknowledged.index()] = acked_at.and_then(|a| span(p.request_end, a));
    spans[Phase::Server.index()] = if early_response {
        None
    } else {
        span(server_start, p.response_start)
    };
    spans[Phase::Response.index()] = span(p.response_start, p.response_end);
    Phases {
        spans,
        total: span(p.invoke_start, p.response_end),
        reused: p.socket_reused,
        dns,
        transport,
        proxied: extensions.is_some_and(|e| e.is_proxy_connection),
        acknowledgement_reported: acked.is_some(),
        body_incomplete: p.request_start > 0.0 && p.request_end == 0.0,
        early_response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_764_028_800_000.0;

    /// A fresh HTTPS upload over HTTP/1.1 with every phase.
    fn fresh_tls() -> (Profile, ProfileExtensions) {
        let p = Profile {
            invoke_start: T0,
            queue_start: T0 + 0.01,
            queue_end: T0 + 0.02,
            fetch_start: T0 + 0.03,
            domain_look_up_start: T0 + 0.04,
            domain_look_up_end: T0 + 0.5,
            connect_start: T0 + 0.5,
            ssl_connection_start: T0 + 0.75,
            ssl_connection_end: T0 + 3.0,
            connect_end: T0 + 3.0,
            request_start: T0 + 3.25,
            request_end: T0 + 10.0,
            response_start: T0 + 12.0,
            response_end: T0 + 20.0,
            protocol: "http1.1".into(),
            ..Profile::default()
        };
        let ext = ProfileExtensions {
            body_acked_end: T0 + 10.5,
            dns_source: "resolver".into(),
            ..ProfileExtensions::default()
        };
        (p, ext)
    }

    fn close(d: Option<f64>, want: f64) -> bool {
        d.is_some_and(|d| (d - want).abs() < 1e-3)
    }

    /// A reused connection as the profile gives it: DNS, connect and TLS at `fetchStart`.
    fn reuse(p: &mut Profile, ext: &mut ProfileExtensions) {
        let f = p.fetch_start;
        p.socket_reused = true;
        for v in [
            &mut p.domain_look_up_start,
            &mut p.domain_look_up_end,
            &mut p.connect_start,
            &mut p.connect_end,
            &mut p.ssl_connection_start,
            &mut p.ssl_connection_end,
        ] {
            *v = f;
        }
        ext.dns_source = "none".into();
    }

    #[test]
    fn names_keys_and_order() {
        let labels: Vec<&str> = Phase::ALL.iter().map(|p| p.label()).collect();
        assert_eq!(
            labels,
            [
                "queue",
                "DNS",
                "connect",
                "proxy",
                "TLS",
                "request sent",
                "acknowledged",
                "server",
                "response"
            ]
        );
        let keys: Vec<&str> = Phase::ALL.iter().map(|p| p.key()).collect();
        assert_eq!(
            keys,
            [
                "queue",
                "dns",
                "connect",
                "proxy",
                "tls",
                "requestSent",
                "acknowledged",
                "server",
                "response"
            ]
        );
        for (i, phase) in Phase::ALL.into_iter().enumerate() {
            assert_eq!(phase.index(), i);
            assert!(phase.between().contains("->"), "{phase:?}");
        }
    }

    #[test]
    fn fresh_tls_upload_has_every_phase_and_they_follow_one_another() {
        let (p, ext) = fresh_tls();
        let ph = phases(&p, Some(&ext));
        assert!(close(ph.duration(Phase::Queue), 0.01));
        assert!(close(ph.duration(Phase::Dns), 0.46));
        assert!(
            close(ph.duration(Phase::Connect), 0.25),
            "connect ends where TLS starts"
        );
        assert!(close(ph.duration(Phase::Tls), 2.25));
        assert!(close(ph.duration(Phase::RequestSent), 6.75));
        assert!(
            close(ph.duration(Phase::Acknowledged), 0.5),
            "acknowledged: requestEnd to bodyAckedEnd"
        );
        assert!(
            close(ph.duration(Phase::Server), 1.5),
            "server: bodyAckedEnd to responseStart"
        );
        assert!(close(ph.duration(Phase::Response), 8.0));
        assert_eq!(ph.total(), Some((T0, T0 + 20.0)));
        // No overlap: each phase starts at or after the end of the one before it. Every phase
        // but proxy happened.
        assert_eq!(ph.span(Phase::Proxy), None);
        assert!(!ph.proxied);
        let spans: Vec<Span> = ph.iter().filter_map(|(_, s)| s).collect();
        assert_eq!(spans.len(), Phase::COUNT - 1);
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1, "{pair:?}");
        }
        // From connectStart on, they add up: connect .. response cover connectStart ->
        // responseEnd but for the gap connectEnd -> requestStart.
        let sum: f64 = Phase::ALL[2..].iter().filter_map(|&x| ph.duration(x)).sum();
        let gap = p.request_start - p.connect_end;
        assert!((sum + gap - (p.response_end - p.connect_start)).abs() < 1e-6);
        assert_eq!(ph.transport, Transport::TlsOverTcp);
        assert_eq!(ph.dns, DnsLookup::Timed);
        assert!(ph.acknowledgement_reported && !ph.reused);
        assert!(!ph.body_incomplete && !ph.early_response);
    }

    #[test]
    fn through_a_proxy_connect_is_the_tcp_to_the_proxy_and_proxy_runs_to_the_tunnel() {
        // An https:// origin through an https:// proxy's CONNECT tunnel.
        let (p, mut ext) = fresh_tls();
        ext.is_proxy_connection = true;
        ext.proxy_connect_end = p.connect_start + 0.1;
        ext.proxy_ssl_connection_start = p.connect_start + 0.1;
        ext.proxy_ssl_connection_end = p.connect_start + 0.15;
        ext.proxy_tunnel_start = p.connect_start + 0.15;
        ext.proxy_tunnel_end = p.ssl_connection_start;
        let ph = phases(&p, Some(&ext));
        assert!(ph.proxied);
        assert!(close(ph.duration(Phase::Connect), 0.1));
        assert!(close(ph.duration(Phase::Proxy), 0.15));
        assert!(close(ph.duration(Phase::Tls), 2.25));
        let spans: Vec<Span> = ph.iter().filter_map(|(_, s)| s).collect();
        assert_eq!(spans.len(), Phase::COUNT);
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1, "{pair:?}");
        }
        // Absolute-form requests to an http:// proxy: no tunnel, no proxy span; connect is the
        // TCP connection to the proxy.
        let (mut p, mut ext) = fresh_tls();
        p.ssl_connection_start = 0.0;
        p.ssl_connection_end = 0.0;
        p.connect_end = p.connect_start + 0.25;
        ext.is_proxy_connection = true;
        ext.proxy_connect_end = p.connect_end;
        let ph = phases(&p, Some(&ext));
        assert!(close(ph.duration(Phase::Connect), 0.25));
        assert_eq!(ph.span(Phase::Proxy), None);
        assert_eq!(ph.span(Phase::Tls), None);
    }

    #[test]
    fn without_an_acknowledgement_the_server_starts_at_request_end() {
        let (p, mut ext) = fresh_tls();
        ext.body_acked_end = 0.0;
        for ph in [phases(&p, None), phases(&p, Some(&ext))] {
            assert_eq!(ph.span(Phase::Acknowledged), None);
            assert!(!ph.acknowledgement_reported);
            assert_eq!(
                ph.span(Phase::Server),
                Some((p.request_end, p.response_start))
            );
        }
    }

    #[test]
    fn an_acknowledgement_stamped_before_request_end_is_an_empty_span() {
        let (p, mut ext) = fresh_tls();
        ext.body_acked_end = p.request_end - 0.25;
        let ph = phases(&p, Some(&ext));
        assert!(ph.acknowledgement_reported);
        assert_eq!(
            ph.span(Phase::Acknowledged),
            Some((p.request_end, p.request_end))
        );
        // The server's turn does not reach back into the request.
        assert_eq!(
            ph.span(Phase::Server),
            Some((p.request_end, p.response_start))
        );
    }

    #[test]
    fn an_acknowledgement_seen_after_response_start_does_not_bound_the_server() {
        let (p, mut ext) = fresh_tls();
        ext.body_acked_end = p.response_start + 1.0;
        let ph = phases(&p, Some(&ext));
        assert_eq!(
            ph.span(Phase::Acknowledged),
            Some((p.request_end, p.response_start + 1.0))
        );
        assert_eq!(
            ph.span(Phase::Server),
            Some((p.request_end, p.response_start))
        );
    }

    #[test]
    fn an_early_response_has_no_server_span() {
        // The body was never completely written.
        let (mut p, ext) = fresh_tls();
        p.request_end = 0.0;
        let ph = phases(&p, Some(&ext));
        assert!(ph.body_incomplete && ph.early_response);
        assert_eq!(ph.span(Phase::RequestSent), None);
        assert_eq!(ph.span(Phase::Acknowledged), None);
        assert!(
            !ph.acknowledgement_reported,
            "no acknowledgement without requestEnd"
        );
        assert_eq!(ph.span(Phase::Server), None);
        assert!(ph.span(Phase::Response).is_some());
        // The body was completed after the answer had started.
        let (mut p, _) = fresh_tls();
        p.request_end = p.response_start + 0.25;
        let ph = phases(&p, None);
        assert!(ph.early_response && !ph.body_incomplete);
        assert_eq!(ph.span(Phase::Server), None);
    }

    #[test]
    fn quic_connect_is_the_handshake_with_tls_inside() {
        let (mut p, ext) = fresh_tls();
        p.protocol = "quic".into();
        p.connect_start = p.ssl_connection_start;
        let ph = phases(&p, Some(&ext));
        assert_eq!(ph.transport, Transport::Quic);
        // connectStart (= SSLconnectionStart) -> connectEnd, and TLS the same span.
        assert_eq!(
            ph.span(Phase::Connect),
            Some((p.connect_start, p.connect_end))
        );
        assert!(close(ph.duration(Phase::Connect), 2.25));
        assert_eq!(ph.span(Phase::Connect), ph.span(Phase::Tls));
    }

    #[test]
    fn plain_http_to_an_ip_literal() {
        let (mut p, mut ext) = fresh_tls();
        p.ssl_connection_start = 0.0;
        p.ssl_connection_end = 0.0;
        p.domain_look_up_start = p.fetch_start;
        p.domain_look_up_end = p.fetch_start;
        ext.dns_source = "literal".into();
        let ph = phases(&p, Some(&ext));
        assert_eq!(ph.transport, Transport::PlainTcp);
        assert_eq!(ph.span(Phase::Tls), None);
        // TCP connect runs to connectEnd without TLS.
        assert!(close(ph.duration(Phase::Connect), 2.5));
        assert_eq!(ph.dns, DnsLookup::NotNeeded);
        assert!(!ph.dns.resolved());
        // The span is what the profile says: empty, at fetchStart.
        assert_eq!(ph.span(Phase::Dns), Some((p.fetch_start, p.fetch_start)));
        // Without extensions, "equal to fetchStart" means no lookup.
        assert_eq!(phases(&p, None).dns, DnsLookup::NotNeeded);
    }

    #[test]
    fn a_cache_hit_resolves_a_name_without_timing_a_lookup() {
        let (mut p, mut ext) = fresh_tls();
        p.domain_look_up_start = p.fetch_start;
        p.domain_look_up_end = p.fetch_start;
        for source in ["cache", "httpdns"] {
            ext.dns_source = source.into();
            let dns = phases(&p, Some(&ext)).dns;
            assert_eq!(dns, DnsLookup::Untimed, "{source}");
            assert!(dns.resolved());
        }
        // A timed lookup is timed whatever the extensions say, and without them.
        let (p, mut ext) = fresh_tls();
        ext.dns_source = String::new();
        assert_eq!(phases(&p, Some(&ext)).dns, DnsLookup::Timed);
        assert_eq!(phases(&p, None).dns, DnsLookup::Timed);
    }

    #[test]
    fn a_reused_connection_keeps_its_empty_connection_spans() {
        let (mut p, mut ext) = fresh_tls();
        reuse(&mut p, &mut ext);
        let ph = phases(&p, Some(&ext));
        assert!(ph.reused);
        assert_eq!(ph.dns, DnsLookup::NotNeeded);
        assert_eq!(ph.transport, Transport::TlsOverTcp);
        let at_fetch = Some((p.fetch_start, p.fetch_start));
        for phase in [Phase::Dns, Phase::Connect, Phase::Tls] {
            assert_eq!(ph.span(phase), at_fetch, "{phase:?}");
        }
        assert!(ph.total().is_some());
    }

    #[test]
    fn zero_means_did_not_happen() {
        let ph = phases(&Profile::default(), None);
        assert!(ph.iter().all(|(_, s)| s.is_none()));
        assert_eq!(ph.total(), None);
        assert!(!ph.early_response && !ph.body_incomplete);
        assert_eq!(ph.transport, Transport::PlainTcp);
    }
}
