//! The QUIC connection's TLS session as quinn runs it, watched from outside for the one fact
//! quinn does not report: the negotiated cipher suite (`profileExtensions.cipherSuite`).
//!
//! quinn's rustls session exposes the ALPN and the server name, not the suite, and keeps its
//! rustls connection private. [`SuiteWatch`] wraps quinn's own crypto configuration: every
//! session it starts is quinn's, unchanged, behind a thin [`Session`] that forwards each call
//! and shows the first bytes of the server's handshake stream to the sans-IO
//! [`ServerHelloSuite`], which reads the suite the server chose from its `ServerHello`
//! (`proto/tls_hello.rs` says why that is exact). Nothing else is touched: keys, transport
//! parameters and certificate verification are quinn's and rustls'. One watch per connection
//! attempt, so the suite lands with the attempt that read it.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use quinn::crypto::{
    ClientConfig, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, Session,
};
use quinn::{ConnectError, ConnectionId, Side};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::TransportError;

use crate::proto::tls_hello::ServerHelloSuite;

/// quinn's client crypto configuration, with the suite of the session it starts recorded.
pub(crate) struct SuiteWatch {
    inner: Arc<dyn ClientConfig>,
    suite: Arc<OnceLock<u16>>,
}

impl SuiteWatch {
    /// Wrap `inner` for one connection attempt; the suite, once read, is in the returned slot.
    pub(crate) fn new(inner: Arc<dyn ClientConfig>) -> (SuiteWatch, Arc<OnceLock<u16>>) {
        let suite = Arc::new(OnceLock::new());
        (
            SuiteWatch {
                inner,
                suite: suite.clone(),
            },
            suite,
        )
    }
}

/// The name rustls gives a suite's code point (`"TLS13_AES_128_GCM_SHA256"`, as over TCP), or
/// empty when none was read.
pub(crate) fn suite_name(suite: Option<u16>) -> String {
    suite
        .and_then(|s| rustls::CipherSuite::from(s).as_str())
        .unwrap_or_default()
        .to_string()
}

impl ClientConfig for SuiteWatch {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn Session>, ConnectError> {
        let inner = self
            .inner
            .clone()
            .start_session(version, server_name, params)?;
        Ok(Box::new(WatchedSession {
            inner,
            hello: ServerHelloSuite::default(),
            suite: self.suite.clone(),
        }))
    }
}

/// quinn's session, every call forwarded; the server's first handshake bytes also go to the
/// `ServerHello` reader until it has the suite.
struct WatchedSession {
    inner: Box<dyn Session>,
    hello: ServerHelloSuite,
    suite: Arc<OnceLock<u16>>,
}

impl Session for WatchedSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.inner.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        if !self.hello.is_done() {
            if let Some(suite) = self.hello.push(buf) {
                let _ = self.suite.set(suite);
            }
        }
        self.inner.read_handshake(buf)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        self.inner.write_handshake(buf)
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.inner.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_named_as_rustls_names_them_over_tcp() {
        assert_eq!(suite_name(Some(0x1301)), "TLS13_AES_128_GCM_SHA256");
        assert_eq!(suite_name(Some(0x1302)), "TLS13_AES_256_GCM_SHA384");
        assert_eq!(suite_name(Some(0x1303)), "TLS13_CHACHA20_POLY1305_SHA256");
        assert_eq!(suite_name(None), "");
        assert_eq!(suite_name(Some(0xFFFF)), "");
    }
}
