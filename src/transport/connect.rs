//! Opening a connection: TCP connect (Happy Eyeballs) and the TLS handshake, each phase stamped
//! at its call and returned as [`ConnectStamps`] with the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::happy_eyeballs;
use super::socket::Socket;
use super::stream::Stream;
use super::target::Origin;
use crate::error::{ErrorKind, UploadError};
use crate::measure::{ConnectStamps, ConnectionInfo};

/// An open connection and what is known about it.
pub(crate) struct Connection {
    pub stream: Stream,
    pub info: Arc<ConnectionInfo>,
    /// Requests this connection has completed.
    pub requests: u64,
    /// When it was last put back into the pool.
    pub idle_since: Instant,
}

/// How to open connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectParams {
    /// Happy Eyeballs' attempt delay.
    pub attempt_delay: Duration,
    /// `TCP_NOTSENT_LOWAT` for the socket, if any.
    pub notsent_lowat: Option<u32>,
}

/// Open a new connection to `origin` at one of `addrs` (raced by Happy Eyeballs); with it, the
/// TCP and TLS stamps.
pub(crate) async fn connect(
    origin: &Origin,
    addrs: &[SocketAddr],
    tls: &Arc<rustls::ClientConfig>,
    id: u64,
    params: ConnectParams,
) -> Result<(Connection, ConnectStamps), UploadError> {
    let won = happy_eyeballs::connect(addrs, params.attempt_delay)
        .await
        .map_err(|e| UploadError::new(ErrorKind::Connect, e))?;
    let mut stamps = ConnectStamps {
        // connectStart: just before the winning attempt's connect (happy_eyeballs).
        connect_start: Some(won.started),
        ..ConnectStamps::default()
    };
    let (tcp, peer, attempts) = (won.stream, won.peer, won.attempts);
    tcp.set_nodelay(true)
        .map_err(|e| UploadError::new(ErrorKind::Connect, format!("TCP_NODELAY: {e}")))?;
    if let Some(lowat) = params.notsent_lowat {
        // Best effort: keeps written bytes close to the network (see `sys`); not fatal where
        // the kernel lacks it.
        let _ = crate::sys::set_notsent_lowat(&tcp, lowat);
    }

    let mut info = ConnectionInfo {
        id,
        peer,
        // localAddress, localPort: the address the kernel bound the connected socket to.
        local: tcp.local_addr().ok(),
        attempts,
        tls_version: String::new(),
        cipher_suite: String::new(),
        alpn: String::new(),
    };
    let stream = if origin.tls {
        let name = ServerName::try_from(origin.host.clone()).map_err(|e| {
            UploadError::new(ErrorKind::InvalidUrl, format!("{}: {e}", origin.host))
        })?;
        stamps.ssl_connection_start = Some(Instant::now()); // SSLconnectionStart
        let tls_stream = TlsConnector::from(tls.clone())
            .connect(name, Socket::new(tcp))
            .await
            .map_err(|e| {
                let why = super::tls::handshake_failure(&origin.host, &e);
                UploadError::new(ErrorKind::Tls, format!("{why} ({origin})"))
            })?;
        stamps.ssl_connection_end = Some(Instant::now()); // SSLconnectionEnd
        let session = tls_stream.get_ref().1;
        info.tls_version = session
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .replace("TLSv1_", "TLSv1.");
        info.cipher_suite = session
            .negotiated_cipher_suite()
            .and_then(|c| c.suite().as_str())
            .unwrap_or_default()
            .to_string();
        info.alpn = session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        Stream::Tls(Box::new(tls_stream))
    } else {
        Stream::Plain(Socket::new(tcp))
    };
    stamps.connect_end = Some(Instant::now()); // connectEnd
    let conn = Connection {
        stream,
        info: Arc::new(info),
        requests: 0,
        idle_since: Instant::now(),
    };
    Ok((conn, stamps))
}
