//! HTTP/3 over QUIC (`enableQuic`): the client's QUIC endpoints, one connection per origin shared
//! by concurrent uploads as streams, and the memory of origins where QUIC failed.
//!
//! # Connecting
//!
//! A connection goes to the URL's host and port over UDP (QUIC needs TLS, so only `https://`
//! URLs), offering ALPN `h3` with TLS 1.3 and the client's usual certificate verification. The
//! QUIC handshake *is* the TLS handshake: `connectStart == SSLconnectionStart` (the instant
//! before the first Initial packet is queued) and `SSLconnectionEnd == connectEnd` (quinn reports
//! the handshake complete). 0-RTT is never used: an upload is not idempotent.
//!
//! The origin's addresses are raced by Happy Eyeballs (RFC 8305, the same procedure as TCP's:
//! `happy_eyeballs.rs`), each attempt a QUIC handshake; the whole attempt gives up after
//! [`ClientConfig::quic_fallback_after`](crate::ClientConfig::quic_fallback_after). The cipher
//! suite is read from the server's `ServerHello` on its way into quinn (`quic_tls.rs`). The
//! connection's local address (`localAddress`, `localPort`) is the endpoint's port with the
//! source address the kernel routes the peer from ([`local_address`]).
//!
//! # Racing TCP, and remembering
//!
//! The upload races this attempt against TCP (`call/race`): TCP starts after QUIC's head start,
//! the first usable connection carries the upload. One attempt per origin runs at a time
//! ([`Attempt`]); uploads that start while it runs join it instead of starting their own. An
//! attempt that completes after TCP won is not wasted: its connection is pooled for the origin's
//! later uploads.
//!
//! When an attempt fails, or TCP won while nothing had come back over UDP (no listener, UDP
//! blocked on the path), the origin is marked broken, as browsers mark a broken alternative
//! service: uploads to it go straight to TCP for
//! [`ClientConfig::quic_broken_for`](crate::ClientConfig::quic_broken_for), doubled after each
//! further failure (up to 48 hours, Chromium's cap), and forgotten after a success (also the
//! late success of the attempt that lost the race). The round-trip times seen per origin are
//! kept for the head start of its next race.
//!
//! # Transport settings
//!
//! Tuned for bulk uploads (measured in `docs/performance.md`, "HTTP/3 over QUIC (issue 7)"): the
//! send window is [`ClientConfig::quic_send_window`](crate::ClientConfig::quic_send_window),
//! datagrams start at 1200 bytes and MTU discovery may raise them up to
//! [`ClientConfig::quic_max_udp_payload`](crate::ClientConfig::quic_max_udp_payload) (4096 by
//! default: on loopback, 1.5x the throughput of quinn's 1452), segmentation offload (GSO) is
//! turned off where quinn's batches of ten datagrams would exceed what the kernel takes in one
//! send, the client accepts no server-initiated request streams, and an idle connection closes
//! after the pool's idle timeout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::happy_eyeballs;
use super::mux_pool::{Multiplexed, MuxPool};
use super::quic_acks::{logged_cubic, AckLog};
use super::quic_glue::{QuicConn, QuicOpener, QuicTapBook};
use super::quic_tls::{suite_name, SuiteWatch};
use super::target::Origin;
use crate::error::{ErrorKind, UploadError};
use crate::measure::{ConnectStamps, ConnectionInfo};

/// h3's handle for sending requests on one connection.
pub(crate) type H3Sender = h3::client::SendRequest<QuicOpener, Bytes>;

/// QUIC settings taken from the client's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuicSettings {
    pub send_window: u64,
    pub max_udp_payload: u16,
    pub idle_timeout: Duration,
}

/// One HTTP/3 connection and what the profile needs to know about it.
pub(crate) struct QuicConnection {
    sender: Mutex<H3Sender>,
    pub conn: quinn::Connection,
    pub book: Arc<QuicTapBook>,
    pub info: Arc<ConnectionInfo>,
    streams_started: AtomicU64,
    /// h3's connection task ended.
    closed: Arc<AtomicBool>,
}

impl QuicConnection {
    /// Start HTTP/3 on a connected QUIC connection (h3 opens its control and QPACK streams and
    /// sends SETTINGS) and run its connection task.
    pub(crate) async fn start(
        conn: quinn::Connection,
        info: ConnectionInfo,
        ack_log: Arc<AckLog>,
    ) -> Result<Arc<QuicConnection>, UploadError> {
        let info = Arc::new(info);
        let book = Arc::new(QuicTapBook::new(ack_log));
        let glue = QuicConn::new(conn.clone(), book.clone());
        let (mut driver, sender) = h3::client::builder()
            .send_grease(false)
            .build::<_, _, Bytes>(glue)
            .await
            .map_err(|e| {
                UploadError::new(ErrorKind::InvalidResponse, format!("HTTP/3 setup: {e}"))
            })?;
        let closed = Arc::new(AtomicBool::new(false));
        let c = closed.clone();
        tokio::spawn(async move {
            // Runs until the connection ends; how it ended is read from quinn when a stream
            // fails (`connection_failure`).
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            c.store(true, Ordering::SeqCst);
        });
        Ok(Arc::new(QuicConnection {
            sender: Mutex::new(sender),
            conn,
            book,
            info,
            streams_started: AtomicU64::new(0),
            closed,
        }))
    }

    /// The connection takes new requests: its task runs and QUIC has not closed it.
    pub(crate) fn is_usable(&self) -> bool {
        !self.closed.load(Ordering::SeqCst) && self.conn.close_reason().is_none()
    }

    /// A request sender of its own for one upload, and the number of streams started before.
    pub(crate) fn sender(&self) -> (H3Sender, u64) {
        let before = self.streams_started.fetch_add(1, Ordering::SeqCst);
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (sender, before)
    }

    /// The path's smoothed round-trip time, in ms.
    pub(crate) fn rtt_ms(&self) -> f64 {
        self.conn.rtt().as_secs_f64() * 1000.0
    }
}

/// How a connection failure reads: what QUIC says of the connection's end when it has ended
/// (the same on every stream it ends), else what HTTP/3 said.
pub(crate) fn connection_failure(conn: &QuicConnection, doing: &str, h3_error: &str) -> String {
    use quinn::ConnectionError as E;
    let Some(end) = conn.conn.close_reason() else {
        return format!("the HTTP/3 connection failed while {doing}: {h3_error}");
    };
    let how = match end {
        E::ApplicationClosed(close) => {
            let code = h3::error::Code::from(close.error_code.into_inner());
            let reason = String::from_utf8_lossy(&close.reason);
            if reason.is_empty() {
                format!("the server closed the QUIC connection with {code}")
            } else {
                format!("the server closed the QUIC connection with {code} ({reason:?})")
            }
        }
        E::ConnectionClosed(close) => format!("the server closed the QUIC connection: {close}"),
        E::TimedOut => "the QUIC connection timed out (nothing from the server for the idle \
                        timeout)"
            .to_string(),
        E::Reset => "the server reset the QUIC connection (stateless reset)".to_string(),
        E::LocallyClosed => "the QUIC connection was closed on this side".to_string(),
        other => format!("the QUIC connection failed: {other}"),
    };
    format!("{how} while {doing}")
}

/// Why QUIC is not tried for an origin right now.
#[derive(Debug, Clone)]
struct Broken {
    until: Instant,
    failures: u32,
    why: String,
}

impl Multiplexed for QuicConnection {
    fn is_usable(&self) -> bool {
        QuicConnection::is_usable(self)
    }
}

/// The pooled HTTP/3 connections (one per origin), the client's endpoints, the attempts in
/// progress, the origins where QUIC failed, and the round-trip times seen per origin.
#[derive(Default)]
pub(crate) struct QuicPool {
    pub conns: MuxPool<Origin, QuicConnection>,
    broken: Mutex<HashMap<Origin, Broken>>,
    /// One UDP endpoint per address family, made on first use.
    endpoints: Mutex<(Option<quinn::Endpoint>, Option<quinn::Endpoint>)>,
    /// quinn's client crypto (TLS) and transport configuration, made on first use: a client's
    /// settings do not change.
    config: Mutex<Option<QuicCrypto>>,
    /// The attempt in progress per origin, joined by the uploads that start meanwhile.
    pending: Mutex<HashMap<Origin, Arc<Attempt>>>,
    /// The last smoothed RTT seen on a connection to each origin (QUIC or TCP).
    rtts: Mutex<HashMap<Origin, Duration>>,
}

/// Chromium's cap on how long an alternative service stays marked broken.
const BROKEN_AT_MOST: Duration = Duration::from_secs(48 * 3600);

/// Origins whose RTT is remembered, at most (an arbitrary one is forgotten beyond).
const RTTS_AT_MOST: usize = 1024;

/// Told the instant the server's first handshake flight arrived.
pub(crate) type OnAnswer = Arc<dyn Fn(Instant) + Send + Sync>;

/// One QUIC connection attempt to an origin, shared by every upload racing it: its progress as
/// a value each of them watches.
pub(crate) struct Attempt {
    state: tokio::sync::watch::Sender<AttemptState>,
    /// The origin was marked broken for this attempt (it is marked once, by whoever saw it
    /// fail or go unanswered first).
    marked_broken: AtomicBool,
}

/// How far an [`Attempt`] got; each field, once set, stays.
#[derive(Clone, Default)]
pub(crate) struct AttemptState {
    /// The handshake began (the attempt may first wait for another connect to the origin).
    pub started: Option<Instant>,
    /// The server's first handshake flight arrived.
    pub answered: Option<Instant>,
    /// The handshake completed (and HTTP/3 started) or failed.
    pub end: Option<Instant>,
    /// How it ended.
    pub result: Option<AttemptResult>,
}

/// The connection, with its connect stamps when the attempt made it (`None`: it was already in
/// the pool), or why there is none.
pub(crate) type AttemptResult = Result<(Arc<QuicConnection>, Option<ConnectStamps>), String>;

/// quinn's crypto (TLS) configuration of a client's connections.
type QuicCrypto = Arc<quinn::crypto::rustls::QuicClientConfig>;

impl Attempt {
    /// Follow the attempt's progress.
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<AttemptState> {
        self.state.subscribe()
    }

    /// Change the state (and tell the watchers).
    pub(crate) fn update(&self, f: impl FnOnce(&mut AttemptState)) {
        self.state.send_modify(f);
    }

    /// Whether the caller is the one to mark the origin broken for this attempt.
    pub(crate) fn claim_broken_mark(&self) -> bool {
        !self.marked_broken.swap(true, Ordering::SeqCst)
    }
}

impl QuicPool {
    /// Drop the pooled connections (streams in flight keep theirs until they end).
    pub(crate) fn clear(&self) {
        self.conns.clear();
    }

    /// HTTP/3 connections pooled now.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Why QUIC is not to be tried for `origin` now, if it is marked broken.
    pub(crate) fn broken(&self, origin: &Origin) -> Option<String> {
        let broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
        let b = broken.get(origin)?;
        let left = b.until.checked_duration_since(Instant::now())?;
        Some(format!(
            "QUIC to {origin} failed before ({}); not tried again for {:.0} s",
            b.why,
            left.as_secs_f64().ceil()
        ))
    }

    /// QUIC failed for `origin`: do not try it for `first` (doubled per consecutive failure).
    pub(crate) fn mark_broken(&self, origin: &Origin, first: Duration, why: &str) {
        let mut broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
        let failures = broken.get(origin).map_or(0, |b| b.failures) + 1;
        let factor = 1u32 << (failures - 1).min(20);
        let span = first.saturating_mul(factor).min(BROKEN_AT_MOST);
        broken.insert(
            origin.clone(),
            Broken {
                until: Instant::now() + span,
                failures,
                why: why.to_string(),
            },
        );
    }

    /// QUIC worked for `origin`: forget earlier failures.
    pub(crate) fn mark_working(&self, origin: &Origin) {
        self.broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(origin);
    }

    /// QUIC failed for `origin` before, and its broken period is over: it is being tried again
    /// (until it works, when the failures are forgotten).
    pub(crate) fn recently_broken(&self, origin: &Origin) -> bool {
        let broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
        broken
            .get(origin)
            .is_some_and(|b| b.until <= Instant::now())
    }

    /// The attempt in progress for `origin`, or a new one (then `true`: the caller runs it, and
    /// calls [`QuicPool::attempt_done`] when it ends).
    pub(crate) fn join_or_start(&self, origin: &Origin) -> (Arc<Attempt>, bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(attempt) = pending.get(origin) {
            return (attempt.clone(), false);
        }
        let attempt = Arc::new(Attempt {
            state: tokio::sync::watch::Sender::new(AttemptState::default()),
            marked_broken: AtomicBool::new(false),
        });
        pending.insert(origin.clone(), attempt.clone());
        (attempt, true)
    }

    /// `attempt` ended: later uploads start their own.
    pub(crate) fn attempt_done(&self, origin: &Origin, attempt: &Arc<Attempt>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.get(origin).is_some_and(|a| Arc::ptr_eq(a, attempt)) {
            pending.remove(origin);
        }
    }

    /// A connection to `origin` measured this smoothed RTT.
    pub(crate) fn note_rtt(&self, origin: &Origin, rtt: Duration) {
        if rtt.is_zero() {
            return;
        }
        let mut rtts = self.rtts.lock().unwrap_or_else(|p| p.into_inner());
        if rtts.len() >= RTTS_AT_MOST && !rtts.contains_key(origin) {
            if let Some(any) = rtts.keys().next().cloned() {
                rtts.remove(&any);
            }
        }
        rtts.insert(origin.clone(), rtt);
    }

    /// The last smoothed RTT seen to `origin`, if any.
    pub(crate) fn origin_rtt(&self, origin: &Origin) -> Option<Duration> {
        self.rtts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .copied()
    }

    /// The UDP endpoint for talking to `peer` (one per address family, bound to an ephemeral
    /// port on first use).
    fn endpoint(&self, peer: &SocketAddr) -> Result<quinn::Endpoint, String> {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        let (slot, bind) = match peer.ip() {
            IpAddr::V4(_) => (&mut endpoints.0, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            IpAddr::V6(_) => (&mut endpoints.1, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        };
        if let Some(e) = slot {
            return Ok(e.clone());
        }
        let endpoint = quinn::Endpoint::client(SocketAddr::new(bind, 0))
            .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// quinn's crypto configuration for this client's connections (the transport
    /// configuration is made per connection: each has its own congestion-controller log).
    fn client_config(&self, tls: &Arc<rustls::ClientConfig>) -> Result<QuicCrypto, String> {
        let mut cached = self.config.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = cached.as_ref() {
            return Ok(config.clone());
        }
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.clone())
            .map_err(|e| format!("no QUIC-capable TLS configuration: {e}"))?;
        let config = Arc::new(crypto);
        *cached = Some(config.clone());
        Ok(config)
    }

    /// Open a QUIC connection to `origin` at the first of `addrs` that completes the handshake
    /// (Happy Eyeballs: a next address after `attempt_delay`, or at once when one fails), within
    /// `within` in all, stamping `connectStart == SSLconnectionStart` and `SSLconnectionEnd ==
    /// connectEnd`. `on_answer` hears when a server's first handshake flight arrived. Fails
    /// with the reason.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn connect(
        &self,
        origin: &Origin,
        addrs: &[SocketAddr],
        tls: &Arc<rustls::ClientConfig>,
        settings: QuicSettings,
        within: Duration,
        attempt_delay: Duration,
        on_answer: OnAnswer,
    ) -> Result<QuicConnected, String> {
        let crypto = self.client_config(tls)?;
        let attempt = |addr: SocketAddr| {
            let endpoint = self.endpoint(&addr);
            // A suite watch per attempt: the suite lands with the connection that read it.
            let (watch, suite) = SuiteWatch::new(crypto.clone());
            let mut config = quinn::ClientConfig::new(Arc::new(watch));
            // And a log of the ACK batches, for when the streams were acknowledged.
            let (ack_log, controller) = logged_cubic();
            let mut transport = transport_config(settings);
            transport.congestion_controller_factory(controller);
            config.transport_config(Arc::new(transport));
            let host = origin.host.clone();
            let on_answer = on_answer.clone();
            async move {
                let endpoint = endpoint.map_err(|e| format!("{addr}: {e}"))?;
                let mut connecting = endpoint
                    .connect_with(config, addr, &host)
                    .map_err(|e| format!("{addr}: {e}"))?;
                if connecting.handshake_data().await.is_ok() {
                    on_answer(Instant::now());
                }
                match connecting.await {
                    Ok(conn) => {
                        let end = Instant::now();
                        let local = local_address(&endpoint, &conn, addr);
                        Ok((conn, end, suite, ack_log, local))
                    }
                    Err(e) => Err(format!("the QUIC handshake with {addr} failed: {e}")),
                }
            }
        };
        let deadline = tokio::time::Instant::now() + within;
        let raced = tokio::time::timeout_at(
            deadline,
            happy_eyeballs::race(addrs, attempt_delay, attempt),
        )
        .await;
        match raced {
            Ok(Ok(won)) => {
                let (conn, end, suite, ack_log, local) = won.conn;
                let start = won.started;
                Ok(QuicConnected {
                    conn,
                    peer: won.peer,
                    local,
                    attempts: won.attempts,
                    stamps: ConnectStamps {
                        connect_start: Some(start),
                        ssl_connection_start: Some(start),
                        ssl_connection_end: Some(end),
                        connect_end: Some(end),
                        proxy: None,
                    },
                    cipher_suite: suite_name(suite.get().copied()),
                    ack_log,
                })
            }
            Ok(Err(why)) => Err(why),
            Err(_) => {
                let to: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                Err(format!(
                    "the QUIC handshake with {} did not complete within {} ms",
                    to.join(", "),
                    within.as_millis()
                ))
            }
        }
    }
}

/// A QUIC handshake that completed.
pub(crate) struct QuicConnected {
    pub conn: quinn::Connection,
    pub peer: SocketAddr,
    /// The connection's own address, if it could be read ([`local_address`]).
    pub local: Option<SocketAddr>,
    /// Addresses tried, this one included.
    pub attempts: u32,
    pub stamps: ConnectStamps,
    /// The negotiated cipher suite, as rustls names it (empty if it could not be read).
    pub cipher_suite: String,
    /// The connection's ACK batches (for when its streams were acknowledged).
    pub ack_log: Arc<AckLog>,
}

/// Datagrams quinn puts in one segmentation-offload batch (its `MAX_TRANSMIT_SEGMENTS`).
const GSO_BATCH: u32 = 10;
/// The most a GSO batch may carry: one IPv4 UDP payload.
const MAX_GSO_BYTES: u32 = 65_507;

fn transport_config(settings: QuicSettings) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.send_window(settings.send_window);
    // The server opens no request streams towards a client; its control and QPACK streams are
    // unidirectional.
    t.max_concurrent_bidi_streams(0u8.into());
    if let Ok(idle) = quinn::IdleTimeout::try_from(settings.idle_timeout) {
        t.max_idle_timeout(Some(idle));
    }
    let payload = settings.max_udp_payload.max(1200);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(payload);
    t.mtu_discovery_config(Some(mtu));
    // quinn sends up to ten datagrams in one GSO batch, and the kernel refuses a batch over one
    // UDP payload (65507 bytes): datagrams larger than a tenth of that go one by one.
    t.enable_segmentation_offload(u32::from(payload) * GSO_BATCH <= MAX_GSO_BYTES);
    t
}

/// The local address of a client connection to `peer` on `endpoint`: the endpoint's port, and
/// the source address its datagrams leave with. The endpoints are bound to the wildcard address
/// and quinn leaves a client's source address to the kernel (its `local_ip()` is `None` for
/// clients), so every datagram gets the address of the kernel's route to `peer`: a UDP socket
/// connected to `peer` reads that route (connecting a UDP socket sends nothing).
fn local_address(
    endpoint: &quinn::Endpoint,
    conn: &quinn::Connection,
    peer: SocketAddr,
) -> Option<SocketAddr> {
    let port = endpoint.local_addr().ok()?.port();
    let ip = match conn.local_ip() {
        Some(ip) => ip,
        None => {
            let any: IpAddr = match peer {
                SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            let probe = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
            probe.connect(peer).ok()?;
            probe.local_addr().ok()?.ip()
        }
    };
    Some(SocketAddr::new(ip, port))
}

/// The connection's identity for the profile.
pub(crate) fn connection_info(
    id: u64,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    attempts: u32,
    cipher_suite: String,
) -> ConnectionInfo {
    ConnectionInfo {
        id,
        peer,
        local,
        attempts,
        // QUIC always runs TLS 1.3.
        tls_version: "TLSv1.3".to_string(),
        cipher_suite,
        alpn: "h3".to_string(),
        proxy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            tls: true,
            host: "example.com".into(),
            port: 443,
        }
    }

    fn left(pool: &QuicPool) -> Duration {
        let broken = pool.broken.lock().unwrap();
        broken[&origin()]
            .until
            .saturating_duration_since(Instant::now())
    }

    #[test]
    fn a_broken_origin_waits_longer_after_each_failure_and_is_forgotten_after_a_success() {
        let pool = QuicPool::default();
        assert!(pool.broken(&origin()).is_none());
        let first = Duration::from_secs(300);
        pool.mark_broken(&origin(), first, "timed out");
        let why = pool.broken(&origin()).unwrap();
        assert!(
            why.contains("timed out") && why.contains("not tried again"),
            "{why}"
        );
        assert!(left(&pool) > Duration::from_secs(299));
        pool.mark_broken(&origin(), first, "timed out");
        assert!(left(&pool) > Duration::from_secs(599));
        pool.mark_broken(&origin(), first, "timed out");
        assert!(left(&pool) > Duration::from_secs(1199));
        for _ in 0..40 {
            pool.mark_broken(&origin(), first, "timed out");
        }
        assert!(left(&pool) <= BROKEN_AT_MOST);
        pool.mark_working(&origin());
        assert!(pool.broken(&origin()).is_none());
    }

    #[test]
    fn a_zero_span_never_keeps_quic_off() {
        let pool = QuicPool::default();
        pool.mark_broken(&origin(), Duration::ZERO, "refused");
        assert!(pool.broken(&origin()).is_none());
    }

    #[test]
    fn an_expired_broken_mark_makes_the_origin_recently_broken_until_it_works() {
        let pool = QuicPool::default();
        assert!(!pool.recently_broken(&origin()));
        pool.mark_broken(&origin(), Duration::from_secs(60), "timed out");
        assert!(
            !pool.recently_broken(&origin()),
            "still broken, not yet retried"
        );
        let pool = QuicPool::default();
        pool.mark_broken(&origin(), Duration::ZERO, "timed out");
        assert!(pool.recently_broken(&origin()));
        pool.mark_working(&origin());
        assert!(!pool.recently_broken(&origin()));
    }

    #[test]
    fn uploads_join_the_attempt_in_progress_and_start_their_own_after_it() {
        let pool = QuicPool::default();
        let (first, new) = pool.join_or_start(&origin());
        assert!(new);
        let (joined, new) = pool.join_or_start(&origin());
        assert!(!new && Arc::ptr_eq(&first, &joined));
        assert!(first.claim_broken_mark());
        assert!(!joined.claim_broken_mark(), "marked once per attempt");
        pool.attempt_done(&origin(), &first);
        let (next, new) = pool.join_or_start(&origin());
        assert!(new && !Arc::ptr_eq(&first, &next));
        // A late `done` of the old attempt leaves the new one in place.
        pool.attempt_done(&origin(), &first);
        assert!(!pool.join_or_start(&origin()).1);
    }

    #[test]
    fn rtts_are_remembered_per_origin_and_bounded() {
        let pool = QuicPool::default();
        assert_eq!(pool.origin_rtt(&origin()), None);
        pool.note_rtt(&origin(), Duration::from_millis(20));
        pool.note_rtt(&origin(), Duration::ZERO); // no sample
        assert_eq!(pool.origin_rtt(&origin()), Some(Duration::from_millis(20)));
        for port in 0..(RTTS_AT_MOST as u16 + 10) {
            let o = Origin { port, ..origin() };
            pool.note_rtt(&o, Duration::from_millis(1));
        }
        assert!(pool.rtts.lock().unwrap().len() <= RTTS_AT_MOST);
    }
}
