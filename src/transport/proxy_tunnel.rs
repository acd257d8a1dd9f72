//! Opening a connection through a proxy: TCP to the proxy, TLS to an `https://` proxy, the
//! tunnel (HTTP `CONNECT`, or the SOCKS handshake), then TLS to an `https://` origin inside it.
//! Each step is stamped right around the I/O that performs it and returned as
//! [`ProxyStamps`] inside the connection's [`ConnectStamps`]; the protocols themselves are the
//! sans-IO state machines of `proto::http_connect` and `proto::socks`.
//!
//! For absolute-form requests to an HTTP proxy ([`ProxyTarget::Forward`]) there is no tunnel:
//! the connection to the proxy (with its TLS, for `https://`) is the connection.
//!
//! Every failure names the proxy by its URL without credentials; no credential is ever part of
//! an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connect::{open_tcp, tls_handshake, ConnectParams, Connection};
use super::socket::Socket;
use super::stream::Stream;
use super::target::Origin;
use crate::error::{ErrorKind, UploadError};
use crate::measure::{ConnectStamps, ProxyFacts, ProxyStamps};
use crate::proto::http_connect::{self, ConnectError, ConnectOutcome, ConnectResponse};
use crate::proto::socks::{
    SocksAuth, SocksErrorCategory, SocksHandshake, SocksStep, SocksTarget, SocksVersion,
};
use crate::proxy::{Proxy, ProxyScheme};

/// Where the connection goes beyond the proxy.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProxyTarget<'a> {
    /// Nowhere: absolute-form requests to an HTTP proxy.
    Forward,
    /// A tunnel to the origin, whose name the proxy resolves.
    Name(&'a Origin),
    /// A tunnel to the origin at an address resolved here (`socks4://`, `socks5://`).
    Addr(&'a Origin, SocketAddr),
}

impl<'a> ProxyTarget<'a> {
    /// The origin at the end of the tunnel, and its address where it was resolved here.
    fn tunnel(&self) -> Option<(&'a Origin, Option<SocketAddr>)> {
        match *self {
            ProxyTarget::Forward => None,
            ProxyTarget::Name(origin) => Some((origin, None)),
            ProxyTarget::Addr(origin, addr) => Some((origin, Some(addr))),
        }
    }
}

/// What a connection through a proxy needs.
pub(crate) struct ProxyPlan<'a> {
    pub proxy: &'a Proxy,
    pub target: ProxyTarget<'a>,
    /// The proxy's addresses (Happy Eyeballs races them).
    pub proxy_addrs: &'a [SocketAddr],
    /// The TLS configuration for an `https://` proxy (no ALPN).
    pub proxy_tls: &'a Arc<rustls::ClientConfig>,
    /// The TLS configuration for an `https://` origin (ALPN as the protocol wants).
    pub origin_tls: &'a Arc<rustls::ClientConfig>,
    /// Sent in the `CONNECT` request.
    pub user_agent: &'a str,
}

/// The largest tunnel answer read: a `CONNECT` response head is capped by its decoder, a SOCKS
/// reply is at most 262 bytes.
const READ_CHUNK: usize = 4096;

/// Open a connection along `plan` (see the module docs); with it, its stamps.
pub(crate) async fn connect(
    plan: ProxyPlan<'_>,
    id: u64,
    params: ConnectParams,
) -> Result<(Connection, ConnectStamps), UploadError> {
    let proxy = plan.proxy;
    let tcp = open_tcp(plan.proxy_addrs, params, id)
        .await
        .map_err(|e| about_proxy(e, proxy))?;
    let mut proxy_stamps = ProxyStamps {
        proxy_connect_end: Some(Instant::now()), // proxyConnectEnd
        ..ProxyStamps::default()
    };
    let mut stamps = ConnectStamps {
        // connectStart: just before the winning attempt's connect to the proxy.
        connect_start: Some(tcp.started),
        ..ConnectStamps::default()
    };
    let mut info = tcp.info;
    let mut facts = ProxyFacts {
        kind: proxy.scheme().as_str(),
        url: proxy.url(),
        mode: match plan.target {
            ProxyTarget::Forward => "forward",
            _ => "tunnel",
        },
        connect_status: 0,
        socks_auth: "",
        origin_resolved_by: match plan.target {
            ProxyTarget::Addr(..) => "client",
            _ => "proxy",
        },
        tls_version: String::new(),
    };
    let socket = Socket::new(tcp.stream);

    // The hop to the proxy: plain, or TLS for an `https://` proxy.
    let to_proxy = if proxy.scheme() == ProxyScheme::Https {
        let done = tls_handshake(plan.proxy_tls, proxy.host(), socket)
            .await
            .map_err(|why| {
                UploadError::new(ErrorKind::Tls, format!("{why} (the proxy {})", proxy.url()))
            })?;
        proxy_stamps.proxy_ssl_connection_start = Some(done.start); // proxySSLconnectionStart
        proxy_stamps.proxy_ssl_connection_end = Some(done.end); // proxySSLconnectionEnd
        facts.tls_version = done.facts.version;
        ProxyHop::Tls(Box::new(done.stream))
    } else {
        ProxyHop::Plain(socket)
    };

    let stream = match plan.target.tunnel() {
        None => to_proxy.into_stream(),
        Some((origin, addr)) => {
            let mut to_proxy = to_proxy;
            let tunnel = match &mut to_proxy {
                ProxyHop::Plain(s) => open_tunnel(s, &plan, origin, addr, &mut facts).await,
                ProxyHop::Tls(s) => open_tunnel(s.as_mut(), &plan, origin, addr, &mut facts).await,
            }?;
            proxy_stamps.proxy_tunnel_start = Some(tunnel.start); // proxyTunnelStart
            proxy_stamps.proxy_tunnel_end = Some(tunnel.end); // proxyTunnelEnd
            if origin.tls {
                let fail = |why: String| {
                    UploadError::new(
                        ErrorKind::Tls,
                        format!("{why} ({origin} through {})", proxy.url()),
                    )
                };
                let (stream, done) = match to_proxy {
                    ProxyHop::Plain(s) => {
                        let done = tls_handshake(plan.origin_tls, &origin.host, s)
                            .await
                            .map_err(fail)?;
                        let (start, end) = (done.start, done.end);
                        done.facts.fill(&mut info);
                        (Stream::Tls(Box::new(done.stream)), (start, end))
                    }
                    ProxyHop::Tls(s) => {
                        let done = tls_handshake(plan.origin_tls, &origin.host, *s)
                            .await
                            .map_err(fail)?;
                        let (start, end) = (done.start, done.end);
                        done.facts.fill(&mut info);
                        (Stream::TlsInTls(Box::new(done.stream)), (start, end))
                    }
                };
                stamps.ssl_connection_start = Some(done.0); // SSLconnectionStart
                stamps.ssl_connection_end = Some(done.1); // SSLconnectionEnd
                stream
            } else {
                to_proxy.into_stream()
            }
        }
    };
    stamps.connect_end = Some(Instant::now()); // connectEnd
    stamps.proxy = Some(proxy_stamps);
    info.proxy = Some(facts);
    Ok((Connection::opened(stream, info), stamps))
}

/// The connection to the proxy itself.
enum ProxyHop {
    Plain(Socket),
    Tls(Box<tokio_rustls::client::TlsStream<Socket>>),
}

impl ProxyHop {
    fn into_stream(self) -> Stream {
        match self {
            ProxyHop::Plain(s) => Stream::Plain(s),
            ProxyHop::Tls(s) => Stream::Tls(s),
        }
    }
}

/// When the tunnel request began and its answer completed.
struct TunnelStamps {
    start: Instant,
    end: Instant,
}

/// Run the tunnel handshake the proxy's kind speaks on `io`, to `origin` (at `addr` where it
/// was resolved here).
async fn open_tunnel<S>(
    io: &mut S,
    plan: &ProxyPlan<'_>,
    origin: &Origin,
    addr: Option<SocketAddr>,
    facts: &mut ProxyFacts,
) -> Result<TunnelStamps, UploadError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let proxy = plan.proxy;
    if proxy.scheme().is_http() {
        let (stamps, status) = http_connect(io, proxy, origin, plan.user_agent).await?;
        facts.connect_status = status;
        return Ok(stamps);
    }
    let version = match proxy.scheme() {
        ProxyScheme::Socks4 => SocksVersion::V4,
        ProxyScheme::Socks4a => SocksVersion::V4a,
        _ => SocksVersion::V5,
    };
    let target = match addr {
        Some(addr) => SocksTarget::Addr(addr),
        None => SocksTarget::Name(&origin.host, origin.port),
    };
    let auth = proxy.credentials().map(|c| SocksAuth {
        user: &c.user,
        password: &c.password,
    });
    let mut handshake = SocksHandshake::new(version, target, auth)
        .map_err(|e| socks_failure(proxy, origin, e.category(), &e.to_string()))?;
    let first = handshake.start();
    let start = Instant::now(); // proxyTunnelStart
    write_all(io, &first, proxy, "SOCKS").await?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut received = 0usize;
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) => {
                let e = handshake.closed();
                return Err(socks_failure(proxy, origin, e.category(), &e.to_string()));
            }
            Ok(n) => n,
            Err(e) => return Err(io_failure(proxy, "SOCKS", received, &e)),
        };
        let end = Instant::now(); // proxyTunnelEnd, if this read completes the reply
        received += n;
        let step = handshake
            .receive(&buf[..n])
            .map_err(|e| socks_failure(proxy, origin, e.category(), &e.to_string()))?;
        match step {
            SocksStep::NeedMore => {}
            SocksStep::Send(bytes) => write_all(io, &bytes, proxy, "SOCKS").await?,
            SocksStep::Done { leftover, .. } => {
                if !leftover.is_empty() {
                    return Err(UploadError::new(
                        ErrorKind::InvalidProxyResponse,
                        format!(
                            "the proxy {} sent {} bytes after its SOCKS reply, before the \
                             request (in HTTP the client speaks first)",
                            proxy.url(),
                            leftover.len()
                        ),
                    ));
                }
                facts.socks_auth = handshake.auth_method().map_or("", |m| m.as_str());
                return Ok(TunnelStamps { start, end });
            }
        }
    }
}

/// `CONNECT` through an HTTP proxy: the stamps and the 2xx status.
async fn http_connect<S>(
    io: &mut S,
    proxy: &Proxy,
    origin: &Origin,
    user_agent: &str,
) -> Result<(TunnelStamps, u16), UploadError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let credentials = proxy
        .credentials()
        .map(|c| (c.user.as_str(), c.password.as_str()));
    let head = http_connect::connect_request(&origin.host, origin.port, credentials, user_agent)
        .map_err(|e| UploadError::new(ErrorKind::InvalidProxy, format!("{}: {e}", proxy.url())))?;
    let authority = authority(origin);
    let start = Instant::now(); // proxyTunnelStart
    write_all(io, &head, proxy, "CONNECT").await?;
    let mut decoder = ConnectResponse::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut received = 0usize;
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) => {
                let e = decoder.closed();
                return Err(connect_failure(proxy, &authority, &e));
            }
            Ok(n) => n,
            Err(e) => return Err(io_failure(proxy, "CONNECT", received, &e)),
        };
        let end = Instant::now(); // proxyTunnelEnd, if this read completes the answer
        received += n;
        match decoder.receive(&buf[..n]) {
            Ok(None) => {}
            Ok(Some(ConnectOutcome::Established { status, .. })) => {
                // Bytes after the 2xx head in the same read are the decoder's error (a
                // CONNECT response has no body, and nothing from the origin is due yet).
                return Ok((TunnelStamps { start, end }, status));
            }
            Ok(Some(ConnectOutcome::Refused {
                status,
                reason,
                realm,
                ..
            })) => {
                return Err(refused(
                    proxy,
                    &authority,
                    status,
                    &reason,
                    realm.as_deref(),
                ))
            }
            Err(e) => return Err(connect_failure(proxy, &authority, &e)),
        }
    }
}

/// An error reaching the proxy itself (its name, its TCP connection), said so.
pub(crate) fn about_proxy(e: UploadError, proxy: &Proxy) -> UploadError {
    UploadError::new(
        e.kind(),
        format!("the proxy {}: {}", proxy.url(), e.detail()),
    )
}

/// A non-2xx answer to `CONNECT`.
fn refused(
    proxy: &Proxy,
    authority: &str,
    status: u16,
    reason: &str,
    realm: Option<&str>,
) -> UploadError {
    if status == 407 {
        return auth_required(proxy, &format!("CONNECT {authority}"), reason, realm);
    }
    UploadError::new(
        ErrorKind::ProxyTunnelFailed,
        format!(
            "the proxy {} answered {status} {reason} to CONNECT {authority}",
            proxy.url()
        ),
    )
}

/// A `407` from the proxy (to `CONNECT`, or to an absolute-form request): whether credentials
/// were sent, and the realm.
pub(crate) fn auth_required(
    proxy: &Proxy,
    to_what: &str,
    reason: &str,
    realm: Option<&str>,
) -> UploadError {
    let realm = realm.map_or(String::new(), |r| format!(" (realm \"{r}\")"));
    let credentials = if proxy.has_credentials() {
        "the credentials sent were refused"
    } else {
        "no credentials were given (put them in the proxy URL as user:password@, or use \
         --proxy-user)"
    };
    UploadError::new(
        ErrorKind::ProxyAuthRequired,
        format!(
            "the proxy {} answered 407 {reason}{realm} to {to_what}: {credentials}",
            proxy.url()
        ),
    )
}

fn connect_failure(proxy: &Proxy, authority: &str, e: &ConnectError) -> UploadError {
    UploadError::new(
        ErrorKind::InvalidProxyResponse,
        format!("the proxy {} to CONNECT {authority}: {e}", proxy.url()),
    )
}

fn socks_failure(
    proxy: &Proxy,
    origin: &Origin,
    category: SocksErrorCategory,
    what: &str,
) -> UploadError {
    let (kind, what) = match category {
        SocksErrorCategory::Refused => {
            // "the SOCKS5 proxy refused the tunnel: <reply by name> (reply code N)", said of
            // this proxy and this origin.
            let reply = what
                .split_once("refused the tunnel: ")
                .map_or(what, |(_, reply)| reply);
            (
                ErrorKind::ProxyTunnelFailed,
                format!("refused the tunnel to {}: {reply}", authority(origin)),
            )
        }
        SocksErrorCategory::Auth => (ErrorKind::ProxyAuthRequired, what.to_string()),
        SocksErrorCategory::Protocol => (ErrorKind::InvalidProxyResponse, what.to_string()),
        SocksErrorCategory::Input => (ErrorKind::InvalidProxy, what.to_string()),
    };
    UploadError::new(kind, format!("the proxy {} {what}", proxy.url()))
}

/// `host:port` as a tunnel request names the origin (IPv6 in brackets).
fn authority(origin: &Origin) -> String {
    if origin.host.contains(':') {
        format!("[{}]:{}", origin.host, origin.port)
    } else {
        format!("{}:{}", origin.host, origin.port)
    }
}

async fn write_all<S: AsyncWrite + Unpin>(
    io: &mut S,
    bytes: &[u8],
    proxy: &Proxy,
    during: &str,
) -> Result<(), UploadError> {
    let written = async {
        io.write_all(bytes).await?;
        io.flush().await
    };
    written.await.map_err(|e| io_failure(proxy, during, 0, &e))
}

fn io_failure(proxy: &Proxy, during: &str, received: usize, e: &std::io::Error) -> UploadError {
    use std::io::ErrorKind as K;
    let what = match e.kind() {
        K::ConnectionReset | K::ConnectionAborted => "reset the connection",
        K::UnexpectedEof => "closed the connection",
        _ => "failed",
    };
    UploadError::new(
        ErrorKind::InvalidProxyResponse,
        format!(
            "the proxy {} {what} during the {during} handshake ({received} bytes of its answer \
             received): {e}",
            proxy.url()
        ),
    )
}
