//! What every upload of one client shares: its settings, TLS configurations, connection pools,
//! resolver, concurrency queue and network quality estimator.
//!
//! The [`Client`](crate::Client) owns one [`Context`] behind an `Arc` and hands it to each upload
//! it starts; `call` is the only user of what is inside. Keeping it here (and not in the API
//! module) is what lets the API depend on `call` without `call` depending back on the API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::CertificateDer;
use tokio::sync::Semaphore;

use super::file_open::FileOpener;
use crate::config::ClientConfig;
use crate::dns::Resolve;
use crate::error::UploadError;
use crate::measure::quality::{EstimatorParams, NetworkQualityEstimator};
use crate::transport::h2_conn::H2Pool;
#[cfg(feature = "quic")]
use crate::transport::quic_conn::QuicPool;
use crate::transport::{tls, HostResolver, Pool};

/// The shared state of one client's uploads.
pub(crate) struct Context {
    pub config: ClientConfig,
    /// The client's trust, offering no ALPN (HTTP/1.1, HTTPDNS).
    pub tls: Arc<rustls::ClientConfig>,
    /// The same trust, offering `h2` by ALPN.
    pub tls_h2: Arc<rustls::ClientConfig>,
    /// The same trust for QUIC: TLS 1.3, ALPN `h3`.
    #[cfg_attr(not(feature = "quic"), allow(dead_code))]
    pub tls_h3: Arc<rustls::ClientConfig>,
    /// Idle HTTP/1.1 connections per origin.
    pub pool: Pool,
    /// HTTP/2 connections, one per origin.
    pub h2: H2Pool,
    /// HTTP/3 connections, one per origin, and the origins where QUIC failed.
    #[cfg(feature = "quic")]
    pub quic: QuicPool,
    /// Uploads in flight at once (`queueStart` / `queueEnd`).
    pub queue: Semaphore,
    pub resolver: HostResolver,
    /// This client's network quality estimator (Chromium's, see `measure::quality`).
    pub quality: Mutex<NetworkQualityEstimator>,
    /// Which files open fast enough to open on the runtime's thread.
    pub files: FileOpener,
    next_connection_id: AtomicU64,
}

impl Context {
    /// The context of a client with `config`, trusting the webpki roots plus the certificates in
    /// `root_pems` (or only `verifier`, when one is given), resolving names with `resolver`.
    /// Fails on an unusable root certificate.
    pub(crate) fn new(
        config: ClientConfig,
        root_pems: &[Vec<u8>],
        verifier: Option<&Arc<dyn ServerCertVerifier>>,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Context, UploadError> {
        crate::measure::clock::init();
        let mut roots: Vec<CertificateDer<'static>> = Vec::new();
        for pem in root_pems {
            roots.extend(tls::parse_pem_certificates(pem)?);
        }
        let roots = &roots[..];
        Ok(Context {
            tls: tls::client_config(roots, verifier)?,
            tls_h2: tls::client_config_h2(roots, verifier)?,
            tls_h3: tls::client_config_h3(roots, verifier)?,
            resolver: HostResolver::new(resolver, config.httpdns.clone(), config.dns_cache_ttl),
            quality: Mutex::new(NetworkQualityEstimator::new(EstimatorParams::default())),
            pool: Pool::new(config.pool_idle_timeout, config.pool_max_idle_per_origin),
            queue: Semaphore::new(config.max_concurrent_uploads.max(1)),
            h2: H2Pool::default(),
            #[cfg(feature = "quic")]
            quic: QuicPool::default(),
            config,
            files: FileOpener::default(),
            next_connection_id: AtomicU64::new(1),
        })
    }

    /// The id of the next connection this client opens (1-based).
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Close every idle pooled connection (streams in flight keep theirs until they end).
    pub(crate) fn close_idle_connections(&self) {
        self.pool.clear();
        self.h2.clear();
        #[cfg(feature = "quic")]
        self.quic.clear();
    }

    /// HTTP/2 connections pooled now.
    pub(crate) fn http2_connections(&self) -> usize {
        self.h2.len()
    }

    /// HTTP/3 connections pooled now (0 without the `quic` feature).
    pub(crate) fn quic_connections(&self) -> usize {
        #[cfg(feature = "quic")]
        return self.quic.len();
        #[cfg(not(feature = "quic"))]
        0
    }

    /// Idle HTTP/1.1 connections pooled now.
    pub(crate) fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}
