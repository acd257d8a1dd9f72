//! A scriptable hostile HTTP/1.1 server, over plain TCP or TLS, for the failure tests.
//!
//! A [`Script`] is the list of [`Act`]s the server performs on one accepted connection, in order:
//! read the request head, read some or all of the body, write bytes (at once or one byte per
//! interval), sleep, close, reset, or hold the connection open without answering. Connection
//! `i` runs script `i` (the last script for every connection after that), so a test can make the
//! first connection hostile and the next one well-behaved, and check with
//! [`HostileServer::accepted`] whether the client opened a new connection.
//!
//! Everything is bounded: every read has a byte cap and the per-connection task gives up after
//! [`CONNECTION_LIFETIME`]; the server is torn down when its handle is dropped. It listens on
//! 127.0.0.1 only. Errors while performing a script (the client went away) end that connection's
//! script quietly and are recorded in its [`ConnLog`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The longest a connection's script may run before the server drops the connection.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections accepted at most by one server.
pub const MAX_CONNECTIONS: usize = 32;
/// The largest request head the server reads.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// One thing the server does on a connection.
#[derive(Debug, Clone)]
pub enum Act {
    /// Read up to the end of the request head (`\r\n\r\n`); bytes after it stay buffered for
    /// the body reads.
    ReadHead,
    /// Write `HTTP/1.1 100 Continue` if the head carried `Expect: 100-continue`.
    Continue,
    /// Read this many body bytes (fewer if the client closes first).
    ReadBody(u64),
    /// Read the rest of the body, as its `Content-Length` says.
    ReadToBodyEnd,
    /// Write these bytes at once.
    Write(Vec<u8>),
    /// Write these bytes one at a time, sleeping `interval` before each.
    Trickle(Vec<u8>, Duration),
    /// Do nothing for a while (the connection stays open).
    Sleep(Duration),
    /// Close: shut down the sending side (TLS `close_notify`, then FIN) and drop the connection.
    /// Unread request bytes make the kernel answer with RST, as any server closing early does.
    Close,
    /// Drop the connection without shutting it down: no TLS `close_notify`, just the kernel's
    /// FIN (RST if request bytes are unread), as when a server process dies.
    Drop,
    /// Abort the connection: `SO_LINGER` 0, then drop, so the kernel sends RST at once.
    Reset,
    /// Never answer: keep the connection open, discarding whatever arrives, until the client
    /// closes it (or [`CONNECTION_LIFETIME`] passes).
    Hang,
}

/// The acts for one connection.
pub type Script = Vec<Act>;

/// What happened on one connection, for assertions.
#[derive(Debug, Clone, Default)]
pub struct ConnLog {
    /// Request heads read, in order.
    pub heads: Vec<String>,
    /// Body bytes read (over all requests).
    pub body_bytes: u64,
    /// Why the script stopped early, if it did (the client closed, a write failed).
    pub error: Option<String>,
    /// The script ran to its end (or to `Close` / `Reset`).
    pub finished: bool,
}

/// A running hostile server; dropping it stops the server and every connection.
pub struct HostileServer {
    /// `http://127.0.0.1:port/upload` or `https://localhost:port/upload`.
    pub url: String,
    /// PEM of the CA that signed the TLS server's certificate (TLS only).
    pub ca_pem: Option<String>,
    accepted: Arc<AtomicUsize>,
    logs: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileServer {
    /// Start a server on 127.0.0.1: plain TCP, or TLS with a fresh throw-away CA.
    pub async fn start(tls: bool, scripts: Vec<Script>) -> HostileServer {
        assert!(!scripts.is_empty(), "at least one script");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (acceptor, ca_pem) = if tls {
            let (acceptor, pem) = tls_acceptor();
            (Some(acceptor), Some(pem))
        } else {
            (None, None)
        };
        let url = if tls {
            format!("https://localhost:{port}/upload")
        } else {
            format!("http://127.0.0.1:{port}/upload")
        };
        let accepted = Arc::new(AtomicUsize::new(0));
        let logs: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>> = Arc::default();
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            scripts,
            accepted.clone(),
            logs.clone(),
        ));
        HostileServer {
            url,
            ca_pem,
            accepted,
            logs,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// What happened on connection `i` so far (0-based, in accept order).
    pub fn log(&self, i: usize) -> ConnLog {
        let logs = self.logs.lock().unwrap();
        logs.get(i)
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// A client for this server (trusting its CA), with the given adjustments.
    pub fn client(
        &self,
        configure: impl FnOnce(uploadfile::ClientBuilder) -> uploadfile::ClientBuilder,
    ) -> uploadfile::Client {
        let mut b = uploadfile::Client::builder().no_proxy();
        if let Some(pem) = &self.ca_pem {
            b = b.add_root_certificates_pem(pem.as_bytes());
        }
        configure(b).build().expect("client builds")
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    scripts: Vec<Script>,
    accepted: Arc<AtomicUsize>,
    logs: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>>,
) {
    // Owned here: aborting the accept loop drops the set, which aborts every connection.
    let mut connections = JoinSet::new();
    for i in 0..MAX_CONNECTIONS {
        let Ok((tcp, _)) = listener.accept().await else {
            break;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let log = Arc::new(Mutex::new(ConnLog::default()));
        logs.lock().unwrap().push(log.clone());
        let script = scripts[i.min(scripts.len() - 1)].clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let run = async {
                let conn = match acceptor {
                    None => Conn::Plain(tcp),
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => Conn::Tls(Box::new(tls)),
                        Err(e) => {
                            log.lock().unwrap().error = Some(format!("TLS handshake: {e}"));
                            return;
                        }
                    },
                };
                perform(conn, script, &log).await;
            };
            if tokio::time::timeout(CONNECTION_LIFETIME, run)
                .await
                .is_err()
            {
                log.lock().unwrap().error = Some("connection lifetime exceeded".into());
            }
        });
        // Reap finished connections so the set does not grow with them.
        while connections.try_join_next().is_some() {}
    }
    // The accept budget is spent: keep the open connections' scripts running.
    while connections.join_next().await.is_some() {}
}

/// A server-side connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    fn io(&mut self) -> &mut (dyn Io + Send) {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.as_mut(),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// The connection's state between acts.
struct Session {
    conn: Conn,
    /// Bytes read past the current position (the start of the body, a pipelined request).
    buf: Vec<u8>,
    /// Body bytes of the current request still unread.
    body_left: u64,
    /// The current request asked for `100 Continue`.
    expects_continue: bool,
}

async fn perform(conn: Conn, script: Script, log: &Mutex<ConnLog>) {
    let mut s = Session {
        conn,
        buf: Vec::new(),
        body_left: 0,
        expects_continue: false,
    };
    for act in script {
        match s.act(act, log).await {
            Ok(Flow::Next) => {}
            Ok(Flow::End) => break,
            Err(e) => {
                log.lock().unwrap().error = Some(e);
                return;
            }
        }
    }
    log.lock().unwrap().finished = true;
}

enum Flow {
    Next,
    End,
}

impl Session {
    async fn act(&mut self, act: Act, log: &Mutex<ConnLog>) -> Result<Flow, String> {
        match act {
            Act::ReadHead => {
                let head = self.read_head().await?;
                log.lock().unwrap().heads.push(head);
            }
            Act::Continue => {
                if self.expects_continue {
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                }
            }
            Act::ReadBody(n) => {
                let n = n.min(self.body_left);
                let got = self.read_body(n).await?;
                log.lock().unwrap().body_bytes += got;
            }
            Act::ReadToBodyEnd => {
                let got = self.read_body(self.body_left).await?;
                log.lock().unwrap().body_bytes += got;
            }
            Act::Write(bytes) => self.write(&bytes).await?,
            Act::Trickle(bytes, interval) => {
                for b in bytes {
                    tokio::time::sleep(interval).await;
                    self.write(&[b]).await?;
                }
            }
            Act::Sleep(d) => tokio::time::sleep(d).await,
            Act::Close => {
                // Best effort: the peer may be gone already.
                let _ = self.conn.io().shutdown().await;
                return Ok(Flow::End);
            }
            Act::Drop => return Ok(Flow::End),
            Act::Reset => {
                socket2::SockRef::from(self.conn.tcp())
                    .set_linger(Some(Duration::ZERO))
                    .map_err(|e| format!("SO_LINGER: {e}"))?;
                return Ok(Flow::End);
            }
            Act::Hang => {
                // Discard until the client closes; bounded by the connection lifetime.
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    match self.conn.io().read(&mut chunk).await {
                        Ok(0) | Err(_) => return Ok(Flow::End),
                        Ok(_) => {}
                    }
                }
            }
        }
        Ok(Flow::Next)
    }

    /// Read bytes into `buf`; `Err` at EOF.
    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = vec![0u8; 64 * 1024];
        match self.conn.io().read(&mut chunk).await {
            Ok(0) => Err("the client closed the connection".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    async fn read_head(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = super::find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                self.buf.drain(..end + 4);
                let lower = head.to_ascii_lowercase();
                self.body_left = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                self.expects_continue = lower.contains("\r\nexpect: 100-continue");
                return Ok(head);
            }
            if self.buf.len() > MAX_REQUEST_HEAD {
                return Err("request head too large".into());
            }
            self.fill().await?;
        }
    }

    /// Read and discard `n` body bytes; returns how many were read (fewer if the client
    /// closed).
    async fn read_body(&mut self, n: u64) -> Result<u64, String> {
        let mut got = 0u64;
        while got < n {
            if self.buf.is_empty() {
                if let Err(e) = self.fill().await {
                    self.body_left -= got;
                    return if got > 0 { Ok(got) } else { Err(e) };
                }
            }
            let take = (self.buf.len() as u64).min(n - got) as usize;
            self.buf.drain(..take);
            got += take as u64;
        }
        self.body_left -= got;
        Ok(got)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let io = self.conn.io();
        io.write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        io.flush().await.map_err(|e| format!("flush: {e}"))
    }
}

/// A fresh CA and a leaf for `localhost` / `127.0.0.1` signed by it; the acceptor offers only
/// `http/1.1`.
fn tls_acceptor() -> (TlsAcceptor, String) {
    let certs = super::certs::throwaway("uploadfile hostile test CA");
    let chain: Vec<CertificateDer<'static>> = vec![CertificateDer::from(certs.leaf_der)];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certs.key_der));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (TlsAcceptor::from(Arc::new(config)), certs.ca_pem)
}
