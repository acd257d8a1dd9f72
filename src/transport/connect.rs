//! Opening a connection: TCP connect (Happy Eyeballs) and the TLS handshake, each phase stamped
//! at its call and returned as [`ConnectStamps`] with the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
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
    /// The HTTP/1.1 exchanges' read buffer, kept with the connection so that an upload on a
    /// reused connection allocates and zeroes none (issue 15); empty until the first exchange.
    pub read_buf: Vec<u8>,
}

impl Connection {
    /// A connection just opened, with what is known about it.
    pub(crate) fn opened(stream: Stream, info: ConnectionInfo) -> Connection {
        Connection {
            stream,
            info: Arc::new(info),
            requests: 0,
            idle_since: Instant::now(),
            read_buf: Vec::new(),
        }
    }
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
    let tcp = open_tcp(addrs, params, id).await?;
    let mut stamps = ConnectStamps {
        // connectStart: just before the winning attempt's connect (happy_eyeballs).
        connect_start: Some(tcp.started),
        ..ConnectStamps::default()
    };
    let mut info = tcp.info;
    let stream = if origin.tls {
        let done = tls_handshake(tls, &origin.host, Socket::new(tcp.stream))
            .await
            .map_err(|why| UploadError::new(ErrorKind::Tls, format!("{why} ({origin})")))?;
        stamps.ssl_connection_start = Some(done.start); // SSLconnectionStart
        stamps.ssl_connection_end = Some(done.end); // SSLconnectionEnd
        done.facts.fill(&mut info);
        Stream::Tls(Box::new(done.stream))
    } else {
        Stream::Plain(Socket::new(tcp.stream))
    };
    stamps.connect_end = Some(Instant::now()); // connectEnd
    Ok((Connection::opened(stream, info), stamps))
}

/// A TCP connection just established, with what the profile reports about it so far.
pub(crate) struct OpenedTcp {
    pub stream: TcpStream,
    /// Just before the winning attempt's `connect`.
    pub started: Instant,
    /// Peer, local address and attempts; no TLS facts, no proxy yet.
    pub info: ConnectionInfo,
}

/// Connect to one of `addrs` (Happy Eyeballs) and set the client's socket options.
pub(crate) async fn open_tcp(
    addrs: &[SocketAddr],
    params: ConnectParams,
    id: u64,
) -> Result<OpenedTcp, UploadError> {
    let won = happy_eyeballs::connect(addrs, params.attempt_delay)
        .await
        .map_err(|e| UploadError::new(ErrorKind::Connect, e))?;
    let tcp = won.stream;
    tcp.set_nodelay(true)
        .map_err(|e| UploadError::new(ErrorKind::Connect, format!("TCP_NODELAY: {e}")))?;
    if let Some(lowat) = params.notsent_lowat {
        // Best effort: keeps written bytes close to the network (see `sys`); not fatal where
        // the kernel lacks it.
        let _ = crate::sys::set_notsent_lowat(&tcp, lowat);
    }
    let info = ConnectionInfo {
        id,
        peer: won.peer,
        // localAddress, localPort: the address the kernel bound the connected socket to.
        local: tcp.local_addr().ok(),
        attempts: won.attempts,
        tls_version: String::new(),
        cipher_suite: String::new(),
        alpn: String::new(),
        proxy: None,
    };
    Ok(OpenedTcp {
        stream: tcp,
        started: won.started,
        info,
    })
}

/// What a TLS handshake negotiated, as the profile names it.
pub(crate) struct TlsFacts {
    /// `"TLSv1.3"` etc.
    pub version: String,
    pub cipher_suite: String,
    pub alpn: String,
}

impl TlsFacts {
    /// Report these as the connection's TLS (the origin's).
    pub(crate) fn fill(self, info: &mut ConnectionInfo) {
        info.tls_version = self.version;
        info.cipher_suite = self.cipher_suite;
        info.alpn = self.alpn;
    }
}

/// A completed TLS handshake: the stream, its stamps and what it negotiated.
pub(crate) struct TlsDone<S> {
    pub stream: TlsStream<S>,
    /// Just before the handshake began.
    pub start: Instant,
    /// The handshake completed.
    pub end: Instant,
    pub facts: TlsFacts,
}

/// Run a TLS handshake with `host` over `io`; on failure, why (without the origin: the
/// caller names what it was connecting to).
pub(crate) async fn tls_handshake<S>(
    tls: &Arc<rustls::ClientConfig>,
    host: &str,
    io: S,
) -> Result<TlsDone<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    let start = Instant::now();
    let stream = TlsConnector::from(tls.clone())
        .connect(name, io)
        .await
        .map_err(|e| super::tls::handshake_failure(host, &e))?;
    let end = Instant::now();
    let session = stream.get_ref().1;
    let facts = TlsFacts {
        version: session
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .replace("TLSv1_", "TLSv1."),
        cipher_suite: session
            .negotiated_cipher_suite()
            .and_then(|c| c.suite().as_str())
            .unwrap_or_default()
            .to_string(),
        alpn: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
    };
    Ok(TlsDone {
        stream,
        start,
        end,
        facts,
    })
}
