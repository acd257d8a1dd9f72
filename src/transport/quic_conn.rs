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
//! # Falling back, and remembering
//!
//! If the handshake fails, or has not completed within
//! [`ClientConfig::quic_fallback_after`](crate::ClientConfig::quic_fallback_after) (no UDP
//! listener, UDP blocked on the path), the upload goes over TCP instead (HTTP/2 with
//! `enableHttp2`, else HTTP/1.1), and the profile's extensions say why (`quicFallback`). The
//! origin is then marked broken, as browsers mark a broken alternative service: uploads to it go
//! straight to TCP for [`ClientConfig::quic_broken_for`](crate::ClientConfig::quic_broken_for),
//! doubled after each further failure (up to 48 hours, Chromium's cap), and forgotten after a
//! success.
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

use super::mux_pool::{Multiplexed, MuxPool};
use super::quic_glue::{QuicConn, QuicOpener, QuicTapBook};
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
    ) -> Result<Arc<QuicConnection>, UploadError> {
        let info = Arc::new(info);
        let book = Arc::new(QuicTapBook::default());
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

/// The pooled HTTP/3 connections (one per origin), the client's endpoints, and the origins
/// where QUIC failed.
#[derive(Default)]
pub(crate) struct QuicPool {
    pub conns: MuxPool<QuicConnection>,
    broken: Mutex<HashMap<Origin, Broken>>,
    /// One UDP endpoint per address family, made on first use.
    endpoints: Mutex<(Option<quinn::Endpoint>, Option<quinn::Endpoint>)>,
    /// quinn's client configuration (TLS and transport), made on first use: a client's settings
    /// do not change.
    config: Mutex<Option<quinn::ClientConfig>>,
}

/// Chromium's cap on how long an alternative service stays marked broken.
const BROKEN_AT_MOST: Duration = Duration::from_secs(48 * 3600);

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

    /// quinn's configuration for this client's connections.
    fn client_config(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        settings: QuicSettings,
    ) -> Result<quinn::ClientConfig, String> {
        let mut cached = self.config.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = cached.as_ref() {
            return Ok(config.clone());
        }
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.clone())
            .map_err(|e| format!("no QUIC-capable TLS configuration: {e}"))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport_config(settings)));
        *cached = Some(config.clone());
        Ok(config)
    }

    /// Open a QUIC connection to `origin` at the first of `addrs` that completes the handshake
    /// within `within`, stamping `connectStart == SSLconnectionStart` and `SSLconnectionEnd ==
    /// connectEnd`. Fails with the reason to fall back.
    pub(crate) async fn connect(
        &self,
        origin: &Origin,
        addrs: &[SocketAddr],
        tls: &Arc<rustls::ClientConfig>,
        settings: QuicSettings,
        within: Duration,
    ) -> Result<QuicConnected, String> {
        let config = self.client_config(tls, settings)?;
        let deadline = tokio::time::Instant::now() + within;
        let mut last = String::from("no address to connect to");
        for (tried, addr) in addrs.iter().enumerate() {
            let attempts = tried as u32 + 1;
            let endpoint = self.endpoint(addr)?;
            let start = Instant::now();
            let connecting = match endpoint.connect_with(config.clone(), *addr, &origin.host) {
                Ok(c) => c,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            match tokio::time::timeout_at(deadline, connecting).await {
                Ok(Ok(conn)) => {
                    let end = Instant::now();
                    let stamps = ConnectStamps {
                        connect_start: Some(start),
                        ssl_connection_start: Some(start),
                        ssl_connection_end: Some(end),
                        connect_end: Some(end),
                    };
                    return Ok(QuicConnected {
                        conn,
                        peer: *addr,
                        attempts,
                        stamps,
                    });
                }
                Ok(Err(e)) => last = format!("the QUIC handshake with {addr} failed: {e}"),
                Err(_) => {
                    return Err(format!(
                        "the QUIC handshake with {addr} did not complete within {} ms",
                        within.as_millis()
                    ))
                }
            }
        }
        Err(last)
    }
}

/// A QUIC handshake that completed.
pub(crate) struct QuicConnected {
    pub conn: quinn::Connection,
    pub peer: SocketAddr,
    /// Addresses tried, this one included.
    pub attempts: u32,
    pub stamps: ConnectStamps,
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

/// The connection's identity for the profile.
pub(crate) fn connection_info(id: u64, peer: SocketAddr, attempts: u32) -> ConnectionInfo {
    ConnectionInfo {
        id,
        peer,
        attempts,
        // QUIC always runs TLS 1.3; quinn does not say which cipher suite it negotiated.
        tls_version: "TLSv1.3".to_string(),
        cipher_suite: String::new(),
        alpn: "h3".to_string(),
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
}
