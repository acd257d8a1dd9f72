//! What the layers below `call` measured, as plain values.
//!
//! Transport and the exchanges do not write into the upload's timeline: they *return* one of
//! these records, and [`UploadRecord`](super::UploadRecord) folds it in. Each stamp is taken
//! immediately around the system call or handshake step it names, by the code that performs
//! that step, and each field is named as the profile names it (`ssl_connection_start` is
//! `SSLconnectionStart`, `request_end` is `requestEnd`), so searching for a profile field finds
//! both where it is measured and where it is folded.

use std::net::SocketAddr;
use std::time::Instant;

use super::profile::Protocol;

/// What name resolution measured. Steps that did not run (a literal IP, a cache hit, no
/// HTTPDNS) leave their stamps `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResolveStamps {
    /// Just before the HTTPDNS request was made (`httpDNSDomainLookUpStart`).
    pub http_dns_domain_look_up_start: Option<Instant>,
    /// When the HTTPDNS answer (or its failure) was in (`httpDNSDomainLookUpEnd`).
    pub http_dns_domain_look_up_end: Option<Instant>,
    /// Just before the resolver was asked (`domainLookUpStart`).
    pub domain_look_up_start: Option<Instant>,
    /// When the resolver answered (`domainLookUpEnd`).
    pub domain_look_up_end: Option<Instant>,
}

/// Which step of name resolution answered (`profileExtensions.dnsSource`).
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
    /// The extension's value.
    pub(crate) fn as_str(self) -> &'static str {
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

/// What opening a connection measured. Over TCP the TLS stamps are `None` on plain HTTP; over
/// QUIC the handshake is both, so `connect_start == ssl_connection_start` and
/// `ssl_connection_end == connect_end`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnectStamps {
    /// Just before the winning attempt's `connect` (or the first QUIC Initial) (`connectStart`).
    pub connect_start: Option<Instant>,
    /// The connection is ready for a request, TLS included (`connectEnd`).
    pub connect_end: Option<Instant>,
    /// Just before the TLS handshake began (`SSLconnectionStart`).
    pub ssl_connection_start: Option<Instant>,
    /// The TLS handshake completed (`SSLconnectionEnd`).
    pub ssl_connection_end: Option<Instant>,
    /// Through a proxy: its own steps (`connect_start` is then when the TCP connection to the
    /// proxy started, `connect_end` when the tunnel, and the origin's TLS in it, were ready).
    pub proxy: Option<ProxyStamps>,
}

/// What the steps through a proxy measured, named as `profileExtensions` names them. Steps that
/// did not happen (no TLS to an `http://` proxy, no tunnel for absolute-form requests) are
/// `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProxyStamps {
    /// The TCP connection to the proxy was established (`proxyConnectEnd`).
    pub proxy_connect_end: Option<Instant>,
    /// Just before the TLS handshake with an `https://` proxy began
    /// (`proxySSLconnectionStart`).
    pub proxy_ssl_connection_start: Option<Instant>,
    /// That handshake completed (`proxySSLconnectionEnd`).
    pub proxy_ssl_connection_end: Option<Instant>,
    /// Just before the first byte of the tunnel request (the `CONNECT` head, the SOCKS
    /// greeting) was written (`proxyTunnelStart`).
    pub proxy_tunnel_start: Option<Instant>,
    /// The read that completed the proxy's final answer (the `CONNECT` 2xx head, the SOCKS
    /// reply) (`proxyTunnelEnd`).
    pub proxy_tunnel_end: Option<Instant>,
}

/// What a connection through a proxy is, fixed when it was opened (`profileExtensions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyFacts {
    /// `"http"`, `"https"`, `"socks4"`, `"socks4a"`, `"socks5"`, `"socks5h"` (`proxyKind`).
    pub kind: &'static str,
    /// The proxy's URL without credentials (`proxyUrl`).
    pub url: String,
    /// `"tunnel"` (`CONNECT` or SOCKS) or `"forward"` (absolute-form requests) (`proxyMode`).
    pub mode: &'static str,
    /// The status of the proxy's answer to `CONNECT`; 0 otherwise (`proxyConnectStatus`).
    pub connect_status: u16,
    /// The SOCKS5 authentication the proxy chose: `"none"`, `"username/password"`; empty
    /// otherwise (`proxySocksAuth`).
    pub socks_auth: &'static str,
    /// Who resolved the origin's name: `"client"` (`socks4://`, `socks5://`) or `"proxy"`
    /// (`originResolvedBy`).
    pub origin_resolved_by: &'static str,
    /// The TLS version with an `https://` proxy; empty otherwise (`proxyTlsVersion`).
    pub tls_version: String,
}

/// What the profile reports about the connection that carried a request, fixed when it was
/// opened (shared by every request it carries, over any protocol).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    /// The client's id of this connection (1-based, in opening order).
    pub id: u64,
    pub peer: SocketAddr,
    /// The connection's own address (`localAddress`, `localPort`): the TCP socket's, or over
    /// QUIC the source address the kernel routes to `peer` with the UDP endpoint's port.
    /// `None` if it could not be read.
    pub local: Option<SocketAddr>,
    /// Connection attempts it took to open it.
    pub attempts: u32,
    /// `"TLSv1.3"` etc.; empty on plain TCP.
    pub tls_version: String,
    /// The negotiated cipher suite; empty on plain TCP (over QUIC, read from the server's
    /// `ServerHello`: `transport/quic_tls.rs`).
    pub cipher_suite: String,
    /// The ALPN protocol the server chose; empty if none.
    pub alpn: String,
    /// The proxy the connection goes through, if any (`peer` is then the proxy's address).
    pub proxy: Option<ProxyFacts>,
}

/// How a request used its connection (`socketReused` and the connection extensions).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionUse {
    pub info: std::sync::Arc<ConnectionInfo>,
    pub protocol: Protocol,
    /// A pooled connection (no connect phases for this request).
    pub reused: bool,
    /// Requests (HTTP/1.1) or streams (h2, HTTP/3) the connection carried before this one.
    pub requests_before: u64,
    /// How long the connection sat idle in the pool before this request (HTTP/1.1), in ms.
    pub idle_before_reuse_ms: f64,
}

/// What one exchange measured: its stamps, named as the profile names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ExchangeStamps {
    /// The write that carried the request's first byte began (`requestStart`).
    pub request_start: Option<Instant>,
    /// The request head was completely written (`requestHeadEnd`, extension).
    pub request_head_end: Option<Instant>,
    /// The request's last byte was written (`requestEnd`); `None` when the body was not
    /// completely sent (an early response).
    pub request_end: Option<Instant>,
    /// The peer acknowledged the request's last byte (`bodyAckedEnd`, extension).
    pub body_acked_end: Option<Instant>,
    /// The read that carried the first interim (1xx) response (`firstInterimResponse`).
    pub first_interim_response: Option<Instant>,
    /// The read that carried the final response's first byte (`responseStart`).
    pub response_start: Option<Instant>,
    /// The read that completed the response (`responseEnd`).
    pub response_end: Option<Instant>,
}

/// What a multiplexed request's stream tap saw (the h2 frame tap, the QUIC glue), named as the
/// profile names it: the one per-stream stamp record of HTTP/2 and HTTP/3, folded into an
/// [`ExchangeReport`] by one response tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamStamps {
    /// The first byte of the request's HEADERS was written (`requestStart`).
    pub request_start: Option<Instant>,
    /// The request's head was written (`requestHeadEnd`).
    pub request_head_end: Option<Instant>,
    /// The stream's end was written after its last byte (`requestEnd`).
    pub request_end: Option<Instant>,
    /// The final response's first byte arrived (`responseStart`).
    pub response_start: Option<Instant>,
    /// The response stream ended (`responseEnd`).
    pub response_end: Option<Instant>,
    /// The stream's bytes written at HTTP level (`sendBytesCount`).
    pub send_bytes_count: u64,
    /// Body bytes written (`bodyBytesSent`).
    pub body_bytes_sent: u64,
    /// The stream's bytes read at HTTP level (`receivedBytedCount`).
    pub received_byted_count: u64,
    /// Of `send_bytes_count`, the request's header block (`requestHeaderBytesSent`).
    pub request_header_bytes: u64,
    /// Of `send_bytes_count`, the protocol's framing and control bytes
    /// (`requestFramingBytes`); the rest is `body_bytes_sent`.
    pub request_framing_bytes: u64,
    /// Of `received_byted_count`, the response's header blocks (`responseHeaderBytesReceived`).
    pub response_header_bytes: u64,
    /// Of `received_byted_count`, the framing and control bytes (`responseFramingBytes`); the
    /// rest is the body's DATA payloads.
    pub response_framing_bytes: u64,
}

/// Where `bodyAckedEnd` came from (`profileExtensions.ackSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckSource {
    /// The kernel's TX_ACK timestamp of the final write.
    Kernel,
    /// The first poll of the counters that saw every byte acknowledged.
    Poll,
    /// HTTP/3: when quinn received the ACK that completed the stream (the ACK batch its
    /// congestion controller was told of, see `transport::quic_acks`).
    #[cfg_attr(not(feature = "quic"), allow(dead_code))]
    Quic,
}

impl AckSource {
    /// The extension's value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AckSource::Kernel => "kernel",
            AckSource::Poll => "poll",
            AckSource::Quic => "quic",
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

    /// The `bodyPath` extension.
    pub(crate) fn path(&self) -> &'static str {
        match (self.zero_copy_bytes > 0, self.copied_bytes > 0) {
            (true, false) => "sendfile",
            (true, true) => "sendfile+read",
            (false, true) => "read",
            (false, false) => "none",
        }
    }
}

/// Everything one completed exchange measured (HTTP/1.1, an h2 stream or an HTTP/3 stream).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExchangeReport {
    pub stamps: ExchangeStamps,
    /// Bytes of the request at HTTP level: head and body over HTTP/1.1, the stream's frames over
    /// h2 and HTTP/3 (`sendBytesCount`).
    pub send_bytes_count: u64,
    /// Body bytes written (`bodyBytesSent`).
    pub body_bytes_sent: u64,
    /// Bytes of the response at HTTP level (`receivedBytedCount`, the original's spelling).
    pub received_byted_count: u64,
    /// Bytes of the response body (the download rate's numerator), framing removed
    /// (`responseBodyBytesReceived`).
    pub response_body_bytes: u64,
    /// Of `send_bytes_count`, the request head or header block (`requestHeaderBytesSent`).
    pub request_header_bytes: u64,
    /// Of `send_bytes_count`, the protocol's own framing and control bytes
    /// (`requestFramingBytes`). Header, body and framing bytes add up to `send_bytes_count`.
    pub request_framing_bytes: u64,
    /// Of `received_byted_count`, the response's heads or header blocks, interim ones and
    /// trailers included (`responseHeaderBytesReceived`).
    pub response_header_bytes: u64,
    /// Of `received_byted_count`, the protocol's own framing and control bytes
    /// (`responseFramingBytes`). Header, body and framing bytes add up to
    /// `received_byted_count`.
    pub response_framing_bytes: u64,
    /// The status of the first interim response (0 if none).
    pub first_interim_status: u16,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The server answered before the request body was completely sent.
    pub early_response: bool,
    /// The transport's smoothed RTT when the response arrived, in ms (`rtt`; profile on only).
    pub rtt_ms: Option<f64>,
    /// Where `body_acked_end` came from, when the kernel stamped or polled it.
    pub ack_source: Option<AckSource>,
    /// Progress events counted acknowledged bytes, not written ones (`progressBasis`).
    pub progress_acknowledged: bool,
    /// How the file's bytes went out.
    pub body: BodyTransfer,
    /// On a multiplexed connection: when the stream was available to this request (a server's
    /// stream limit may make it wait, which is queue time).
    pub stream_ready_at: Option<Instant>,
}

/// Which transport carried a hop that `enableQuic` raced (`profileExtensions.raceWinner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RaceWinner {
    Quic,
    Tcp,
}

impl RaceWinner {
    /// The extension's value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RaceWinner::Quic => "quic",
            RaceWinner::Tcp => "tcp",
        }
    }
}

/// Why the winner carried the hop (`profileExtensions.raceReason`): what became of QUIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "quic"), allow(dead_code))]
pub(crate) enum RaceReason {
    /// An open QUIC connection to the origin took the hop: no race.
    Pooled,
    /// QUIC's handshake completed within its head start; TCP never started.
    First,
    /// TCP started after the head start, and QUIC still completed first (TCP was closed).
    Faster,
    /// TCP was ready first although the QUIC server had answered: its handshake was slower.
    HandshakeSlower,
    /// TCP was ready first and nothing had come back over UDP (UDP blackholed or filtered, no
    /// QUIC listener).
    NoAnswer,
    /// The QUIC handshake failed (or the server refused `h3`); TCP carried the hop.
    Failed,
    /// QUIC was not tried: it failed for this origin before (the broken-origin memory).
    BrokenOrigin,
    /// QUIC was not tried: an `http://` URL, or a build without the `quic` feature.
    Unavailable,
    /// QUIC was not tried: a proxy is in force, and no proxy here carries QUIC (no MASQUE).
    Proxied,
}

impl RaceReason {
    /// The extension's value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RaceReason::Pooled => "quic-pooled",
            RaceReason::First => "quic-first",
            RaceReason::Faster => "quic-faster",
            RaceReason::HandshakeSlower => "quic-handshake-slower",
            RaceReason::NoAnswer => "quic-no-answer",
            RaceReason::Failed => "quic-failed",
            RaceReason::BrokenOrigin => "quic-broken-origin",
            RaceReason::Unavailable => "quic-unavailable",
            RaceReason::Proxied => "quic-proxied",
        }
    }
}

/// What QUIC's head start was derived from (`profileExtensions.raceHeadStartBasis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "quic"), allow(dead_code))]
pub(crate) enum HeadStartBasis {
    /// The origin's own round-trip time, from an earlier connection to it.
    OriginRtt,
    /// The client's transport RTT estimate (its network quality estimator), over all origins.
    ClientRtt,
    /// No RTT known: the fixed default.
    Default,
    /// QUIC to this origin failed before and is being tried again: TCP is not held back.
    RecentlyBroken,
}

impl HeadStartBasis {
    /// The extension's value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HeadStartBasis::OriginRtt => "origin-rtt",
            HeadStartBasis::ClientRtt => "client-rtt",
            HeadStartBasis::Default => "default",
            HeadStartBasis::RecentlyBroken => "recently-broken",
        }
    }
}

/// How one side of the race ended, as far as the hop saw it (`quicAttemptOutcome`,
/// `tcpAttemptOutcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(feature = "quic"), allow(dead_code))]
pub(crate) enum AttemptOutcome {
    /// Not started.
    #[default]
    NotStarted,
    /// Connected and carried the hop.
    Connected,
    /// QUIC: an attempt of a concurrent upload to the origin completed first, and its
    /// connection carried the hop.
    Joined,
    /// TCP: a pooled connection to the origin was ready (HTTP/2, or an idle HTTP/1.1 one).
    Pooled,
    /// QUIC: still handshaking when TCP won. It goes on in the background and, if it completes,
    /// its connection is pooled for the origin's later uploads.
    Pending,
    /// TCP: QUIC won; the TCP attempt (connected or not) was closed.
    Closed,
    /// Failed (the reason is beside it).
    Failed,
}

impl AttemptOutcome {
    /// The extension's value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::NotStarted => "",
            AttemptOutcome::Connected => "connected",
            AttemptOutcome::Joined => "joined",
            AttemptOutcome::Pooled => "pooled",
            AttemptOutcome::Pending => "pending",
            AttemptOutcome::Closed => "closed",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// What the QUIC side of a race measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QuicAttemptStamps {
    /// Just before the first address's handshake began (`quicAttemptStart`).
    pub start: Option<Instant>,
    /// The server's first handshake flight was in: quinn had its handshake data
    /// (`quicServerHello`).
    pub server_hello: Option<Instant>,
    /// The handshake completed (HTTP/3 started on it) or failed (`quicAttemptEnd`).
    pub end: Option<Instant>,
    pub outcome: AttemptOutcome,
    /// Why it failed (`quicAttemptError`).
    pub error: Option<String>,
}

/// What the TCP side of a race measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TcpAttemptStamps {
    /// TCP started: the head start was over, or QUIC failed (`tcpAttemptStart`).
    pub start: Option<Instant>,
    /// The TCP connection was established (`tcpConnectEnd`).
    pub connect_end: Option<Instant>,
    /// The TLS handshake completed (`tcpTlsEnd`).
    pub tls_end: Option<Instant>,
    pub outcome: AttemptOutcome,
    /// Why it failed (`tcpAttemptError`).
    pub error: Option<String>,
}

/// How `enableQuic` chose the transport of a hop: QUIC raced against TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RaceReport {
    pub winner: RaceWinner,
    pub reason: RaceReason,
    /// QUIC's head start before TCP started alongside, and what it was derived from; `None`
    /// when no race ran (a pooled QUIC connection, a broken origin, QUIC unavailable).
    pub head_start: Option<(std::time::Duration, HeadStartBasis)>,
    pub quic: QuicAttemptStamps,
    pub tcp: TcpAttemptStamps,
}

impl RaceReport {
    /// No race: `winner` carried the hop for `reason`.
    pub(crate) fn without_race(winner: RaceWinner, reason: RaceReason) -> RaceReport {
        RaceReport {
            winner,
            reason,
            head_start: None,
            quic: QuicAttemptStamps::default(),
            tcp: TcpAttemptStamps::default(),
        }
    }
}
