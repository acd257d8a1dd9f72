//! Opening a connection: resolve, TCP connect, TLS handshake — each phase timed at its call.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::happy_eyeballs;
use super::stream::Stream;
use crate::error::{ErrorKind, UploadError};
use crate::profile::Timeline;

/// Where a connection goes: the pool's key. Two URLs with the same origin share connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub tls: bool,
    /// Lower-case host name, or an IP literal without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// What the profile reports about the connection that carried a request, fixed when it was
/// opened (shared by HTTP/1.1 connections and HTTP/2 connections).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    /// The client's id of this connection (1-based, in opening order).
    pub id: u64,
    pub peer: SocketAddr,
    /// Connection attempts it took to open it.
    pub attempts: u32,
    /// `"TLSv1.3"` etc.; empty on plain TCP.
    pub tls_version: String,
    pub cipher_suite: String,
    pub alpn: String,
}

/// An open connection and what is known about it.
pub(crate) struct Connection {
    pub stream: Stream,
    pub info: ConnectionInfo,
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

/// Open a new connection to `origin` at one of `addrs` (raced by Happy Eyeballs), recording
/// the TCP and TLS times into `timeline`.
pub(crate) async fn connect(
    origin: &Origin,
    addrs: &[SocketAddr],
    tls: &Arc<rustls::ClientConfig>,
    id: u64,
    params: ConnectParams,
    timeline: &mut Timeline,
) -> Result<Connection, UploadError> {
    let won = happy_eyeballs::connect(addrs, params.attempt_delay)
        .await
        .map_err(|e| UploadError::new(ErrorKind::Connect, e))?;
    timeline.connect_start = Some(won.started);
    let (tcp, peer, attempts) = (won.stream, won.peer, won.attempts);
    tcp.set_nodelay(true)
        .map_err(|e| UploadError::new(ErrorKind::Connect, format!("TCP_NODELAY: {e}")))?;
    if let Some(lowat) = params.notsent_lowat {
        // Best effort: keeps written bytes close to the network (see `sys`); not fatal where
        // the kernel lacks it.
        let _ = crate::sys::set_notsent_lowat(&tcp, lowat);
    }

    let mut conn = Connection {
        stream: Stream::Plain(tcp),
        info: ConnectionInfo {
            id,
            peer,
            attempts,
            tls_version: String::new(),
            cipher_suite: String::new(),
            alpn: String::new(),
        },
        requests: 0,
        idle_since: Instant::now(),
    };
    if origin.tls {
        let Stream::Plain(tcp) = conn.stream else {
            unreachable!("a new connection starts as plain TCP")
        };
        let name = ServerName::try_from(origin.host.clone()).map_err(|e| {
            UploadError::new(ErrorKind::InvalidUrl, format!("{}: {e}", origin.host))
        })?;
        timeline.ssl_start = Some(Instant::now());
        let tls_stream = TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let why = super::tls::handshake_failure(&origin.host, &e);
                UploadError::new(ErrorKind::Tls, format!("{why} ({origin})"))
            })?;
        timeline.ssl_end = Some(Instant::now());
        let session = tls_stream.get_ref().1;
        conn.info.tls_version = session
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .replace("TLSv1_", "TLSv1.");
        conn.info.cipher_suite = session
            .negotiated_cipher_suite()
            .and_then(|c| c.suite().as_str())
            .unwrap_or_default()
            .to_string();
        conn.info.alpn = session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        conn.stream = Stream::Tls(Box::new(tls_stream));
    }
    timeline.connect_end = Some(Instant::now());
    Ok(conn)
}
