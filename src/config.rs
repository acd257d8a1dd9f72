//! The client's settings: every knob, its default, and why the default is what it is.
//!
//! [`ClientConfig`] is plain data; [`ClientBuilder`](crate::ClientBuilder) fills it, and the
//! upload machinery below reads it.

use std::time::Duration;

use crate::dns::HttpDnsConfig;
use crate::proxy::ProxyRules;

/// The client's settings. Build one with [`Client::builder`](crate::Client::builder).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Uploads in flight at once; more wait in the queue (`queueStart`/`queueEnd`). Default 10,
    /// as in the original.
    pub max_concurrent_uploads: usize,
    /// How long an idle connection stays in the pool. Default 60 s.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per origin. Default 16.
    pub pool_max_idle_per_origin: usize,
    /// `User-Agent` sent unless the options set one. Default `uploadfile/<version>`.
    pub user_agent: String,
    /// Send `Expect: 100-continue` for bodies larger than this many bytes; `None` never.
    /// Default 1 MiB, as curl does.
    pub expect_continue_threshold: Option<u64>,
    /// How long to wait for `100 Continue` before sending the body anyway. Default 1 s.
    pub expect_continue_timeout: Duration,
    /// Largest response body accepted; a larger one fails with `response too large`.
    /// Default 16 MiB.
    pub max_response_body: usize,
    /// Bytes read from the file per write on the buffered path (TLS, HTTP/2, or zero copy
    /// off). Default 256 KiB.
    pub chunk_size: usize,
    /// Send the file with `sendfile(2)` on plain-TCP HTTP/1.1 (Linux): no copy through user
    /// space (`usingHighPerformanceMode: true`). Windows of the file not in the page cache are
    /// read on the blocking pool instead, and a kernel that refuses `sendfile` gets buffered
    /// reads. A file no larger than `chunk_size` goes with the request head in one vectored
    /// write instead (one system call where `sendfile` takes four). Default true: on a quiet
    /// machine it measured 1.39x the buffered path's throughput
    /// at 0.69x its CPU, level with a minimal `sendfile` sender (`docs/performance.md`, "Write
    /// paths").
    pub zero_copy: bool,
    /// rustls' limit on buffered outgoing plaintext (`ClientConnection::set_buffer_limit`): how
    /// much of one write becomes TLS records before they go to the socket. `None` keeps rustls'
    /// default (64 KiB). Default `None` (see `docs/performance.md`: larger measured no faster).
    pub tls_buffer_limit: Option<usize>,
    /// How long resolved addresses stay in the client's DNS cache; zero turns the cache off.
    /// Default 60 s.
    pub dns_cache_ttl: Duration,
    /// HTTPDNS, tried before the resolver when set. Default none.
    pub httpdns: Option<HttpDnsConfig>,
    /// Happy Eyeballs' connection attempt delay (RFC 8305 §5). Default 250 ms.
    pub happy_eyeballs_delay: Duration,
    /// Redirects followed at most; `0` returns the 3xx response itself. Default 10.
    pub max_redirects: u32,
    /// With `enableHttp2`, speak HTTP/2 to `http://` URLs too, without negotiation (h2c with
    /// prior knowledge, as `curl --http2-prior-knowledge`). Default false: `http://` stays
    /// HTTP/1.1, and `https://` negotiates by ALPN.
    pub http2_prior_knowledge: bool,
    /// Our HTTP/2 receive window per stream. Default 1 MiB.
    pub h2_initial_window_size: u32,
    /// Our HTTP/2 receive window per connection. Default 4 MiB.
    pub h2_initial_connection_window_size: u32,
    /// Bytes h2 buffers per stream before waiting (it writes one DATA frame per flush, so
    /// larger means fewer, larger writes). Default 1 MiB.
    pub h2_max_send_buffer_size: usize,
    /// `TCP_NOTSENT_LOWAT` on the client's sockets: at most this many written bytes wait unsent
    /// in the kernel, so `requestEnd` and progress stay close to the network. `None` leaves the
    /// kernel default (the whole send buffer). Default 128 KiB.
    pub notsent_lowat: Option<u32>,
    /// Track what the peer acknowledged (acknowledged progress, `bodyAckedEnd`) for uploads
    /// that ask for a profile: TCP counters and `TX_ACK` stamps over HTTP/1.1 and h2. Off, such
    /// uploads report written progress (`progressBasis: "written"`) and `bodyAckedEnd` 0 over
    /// TCP, and save the polls and stamps (about 12–17 µs of CPU per small h2 upload,
    /// docs/performance.md): a load generator's switch. Default on.
    pub track_acknowledgements: bool,
    /// With `enableQuic`: the longest an upload waits for QUIC before TCP starts. QUIC is raced
    /// against TCP: TCP starts after QUIC's head start (1.5 times the RTT to the origin, at
    /// least 25 ms; 300 ms when no RTT is known), which is never longer than this; the first
    /// connection ready carries the upload (`raceWinner`, `raceReason`, `quicFallback` in the
    /// profile's extensions say which and why). A QUIC reconnect made without a race (a pooled
    /// QUIC connection that failed under a stream) also waits this long at most. Default 1 s.
    pub quic_fallback_after: Duration,
    /// With `enableQuic`: after QUIC failed for an origin, go straight to TCP for this long
    /// (doubled after each further failure, up to 48 hours; forgotten after a success), as
    /// browsers mark a broken alternative service. Default 5 minutes (Chromium's).
    pub quic_broken_for: Duration,
    /// QUIC: bytes sent but not yet acknowledged, at most, per connection (quinn's send window).
    /// Also what one upload's file chunks out at once (read and not yet acknowledged: quinn
    /// keeps them for retransmission) may grow to, plus two chunks: each upload starts at 2 MiB
    /// and follows twice the path's measured bandwidth-delay product, so memory follows the
    /// path, not the window (`docs/performance.md`, "HTTP/3 peak RSS (issue 15)"). Default
    /// 16 MiB (`docs/performance.md`, "HTTP/3 over QUIC").
    pub quic_send_window: u64,
    /// QUIC: hand the file's chunks to quinn as the very buffers they were read into (true), or
    /// let them be copied into quinn's send buffer, as `h3-quinn` does (false; for measuring
    /// the difference). Default true (`docs/performance.md`, "HTTP/3 over QUIC").
    pub quic_zero_copy: bool,
    /// QUIC: the largest UDP payload MTU discovery may try (datagrams start at 1200 bytes and
    /// grow only as far as probes get through, so on an Ethernet path they stop at about 1452).
    /// Default 4096: where the path allows more (loopback, jumbo frames), fewer, larger packets
    /// measured 1.5x the throughput at 0.6x the CPU of quinn's default 1452
    /// (`docs/performance.md`, "HTTP/3 over QUIC"). Above 6550 datagrams are sent one by one
    /// (no segmentation offload), which measured slower.
    pub quic_max_udp_payload: u16,
    /// Which proxy each request goes through (`src/proxy/`). `ClientConfig::default()` has
    /// none; [`Client::builder`](crate::Client::builder) starts from the environment
    /// ([`ProxyRules::from_env`]), as curl and reqwest do.
    pub proxy: ProxyRules,
    /// Through an HTTP proxy, tunnel `http://` origins with `CONNECT` too, instead of sending
    /// them to the proxy in absolute form (curl's `--proxytunnel`). h2c with prior knowledge
    /// always tunnels. Default false.
    pub proxy_tunnel: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_concurrent_uploads: 10,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_origin: 16,
            user_agent: concat!("uploadfile/", env!("CARGO_PKG_VERSION")).to_string(),
            expect_continue_threshold: Some(1024 * 1024),
            expect_continue_timeout: Duration::from_secs(1),
            max_response_body: 16 * 1024 * 1024,
            chunk_size: 256 * 1024,
            zero_copy: true,
            tls_buffer_limit: None,
            dns_cache_ttl: Duration::from_secs(60),
            httpdns: None,
            happy_eyeballs_delay: Duration::from_millis(250),
            max_redirects: 10,
            notsent_lowat: Some(128 * 1024),
            track_acknowledgements: true,
            http2_prior_knowledge: false,
            h2_initial_window_size: 1024 * 1024,
            h2_initial_connection_window_size: 4 * 1024 * 1024,
            h2_max_send_buffer_size: 1024 * 1024,
            quic_fallback_after: Duration::from_secs(1),
            quic_broken_for: Duration::from_secs(300),
            quic_send_window: 16 * 1024 * 1024,
            quic_zero_copy: true,
            quic_max_udp_payload: 4096,
            proxy: ProxyRules::none(),
            proxy_tunnel: false,
        }
    }
}
