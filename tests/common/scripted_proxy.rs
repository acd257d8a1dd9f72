//! A scripted proxy, well-behaved or hostile, for the proxy tests (issue 14): HTTP `CONNECT`,
//! HTTP forwarding (absolute-form requests), SOCKS5 (no auth, RFC 1929 username/password) and
//! SOCKS4a, each act of each connection under the test's control, with the times the proxy saw.
//!
//! A [`Script`] is the list of [`Act`]s the proxy performs on one accepted connection, in order:
//! read the client's tunnel request (an HTTP head, a SOCKS greeting, authentication or request),
//! check it, connect to the target, answer (as a proxy should, or with any bytes the test likes),
//! sleep, close, reset, hold the connection silently, or relay bytes both ways between the client
//! and the target. Connection `i` runs script `i` (the last script for every connection after
//! that). [`presets`] has a well-behaved script for each kind of proxy.
//!
//! What the proxy saw is logged per connection ([`ConnLog`]): the request heads (so a test can
//! check that `Proxy-Authorization` reached the proxy and `Authorization` did not), the SOCKS
//! methods, credentials and target, what it passed on to the origin (the forwarded heads, the
//! first bytes relayed), and the `Instant`s of the accept, the first byte read and the answer to
//! the tunnel request (before and after its write), for comparing with the client's profile
//! (`uploadfile::clock::epoch_ms(Instant)` maps them to the profile's milliseconds). For that
//! comparison, run the proxy on a thread of its own ([`ProxyOptions::own_thread`]), so that its
//! stamps do not wait for the test's runtime.
//!
//! The proxy never reaches beyond the machine: a target is connected to only if it is a loopback
//! address, `localhost`, or a name the test mapped to a loopback address
//! ([`ProxyOptions::hosts`]); any other target is refused as a real proxy's rules would refuse it
//! (SOCKS5 reply 2 "not allowed by ruleset", SOCKS4 91, HTTP 403).
//!
//! Everything is bounded: [`MAX_CONNECTIONS`] accepts, reads capped in size, a lifetime per
//! connection ([`ProxyOptions::lifetime`], relays included); dropping the [`ScriptedProxy`] stops
//! the accept loop and every connection. It listens on 127.0.0.1 only, plain TCP or TLS (an
//! `https://` proxy, with a throw-away CA). Errors while performing a script (the client went
//! away) end that connection's script quietly and are recorded in its [`ConnLog`].

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Connections accepted at most by one proxy.
pub const MAX_CONNECTIONS: usize = 32;
/// The default lifetime of a connection (its script and relay included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// The largest HTTP request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;
/// How many of the bytes relayed to the origin a [`ConnLog`] keeps.
const ORIGIN_BYTES_KEPT: usize = 64 * 1024;
/// How long connecting to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One thing the proxy does on a connection.
#[derive(Debug, Clone)]
pub enum Act {
    /// Read an HTTP request head, up to `\r\n\r\n`, and record it; a `CONNECT host:port` or an
    /// absolute-form URI (`POST http://host:port/path`) becomes the target. Bytes after the head
    /// stay buffered (they are relayed).
    ReadConnectHead,
    /// Well-behaved: the last head must carry `Proxy-Authorization: Basic` for these
    /// credentials; if not, answer `407` with `Proxy-Authenticate: Basic realm="REALM"` and
    /// `Connection: close`, and end. With [`Act::ForwardRelay`], every later request is checked
    /// the same way.
    RequireProxyAuth {
        user: String,
        password: String,
        realm: String,
    },
    /// Read a SOCKS5 greeting (version, methods) and record the methods.
    ReadSocksGreeting,
    /// Well-behaved: write the method-selection reply for `method` if the client offered it,
    /// else `0xFF` (no acceptable method) and end.
    ChooseSocksMethod(u8),
    /// Write the method-selection reply `[5, method]`, whatever the client offered.
    WriteSocksMethod(u8),
    /// Read an RFC 1929 username/password request and record it.
    ReadSocksAuth,
    /// Well-behaved: answer the recorded credentials with status 0 if they are these, else
    /// status 1, and end.
    CheckSocksAuth { user: String, password: String },
    /// Write the RFC 1929 status reply `[1, status]`.
    WriteSocksAuthStatus(u8),
    /// Read a SOCKS5 request (command, address type, address, port) and record the target. An
    /// unknown address type is answered with reply 8 ("address type not supported"), and ends.
    ReadSocksRequest,
    /// Read a SOCKS4 or SOCKS4a request (command, port, address, user id, host name) and record
    /// the target.
    ReadSocks4Request,
    /// Connect to the recorded target (loopback only, see the module docs); the outcome decides
    /// what [`Act::ReplyConnect`], [`Act::ReplySocks`] and [`Act::ReplySocks4`] write.
    ConnectTarget,
    /// Well-behaved `CONNECT` answer: `200 Connection established` if [`Act::ConnectTarget`]
    /// connected, `403` if the target was not allowed, `502` if it failed (and end).
    ReplyConnect,
    /// Well-behaved SOCKS5 reply: 0 (with the bound address) if connected, else 2 (not
    /// allowed), 5 (refused), 6 (timed out), 7 (a command other than CONNECT) or 1 (any other
    /// failure), and end.
    ReplySocks,
    /// Well-behaved SOCKS4 reply: 90 if connected, else 91 (and end).
    ReplySocks4,
    /// Write the SOCKS5 reply `code` with bound address 0.0.0.0:0, whatever happened.
    WriteSocksReply(u8),
    /// Write the SOCKS4 reply `code`, whatever happened.
    WriteSocks4Reply(u8),
    /// Write these bytes as the answer to the tunnel request: the time is the connection's
    /// `replied` (e.g. a scripted `HTTP/1.1 200 ...`, a 407, garbage).
    Reply(Vec<u8>),
    /// Write these bytes.
    Write(Vec<u8>),
    /// Do nothing for a while (the connection stays open).
    Sleep(Duration),
    /// Shut down the sending side (TLS `close_notify`, then FIN) and end.
    Close,
    /// `SO_LINGER` 0, then drop: the kernel sends RST at once.
    Reset,
    /// Stay silent, discarding whatever arrives, until the client closes, the lifetime ends or
    /// the proxy is dropped.
    Hold,
    /// Relay bytes both ways between the client and the target (connecting first if
    /// [`Act::ConnectTarget`] did not), until both sides have closed; then end.
    Relay,
    /// HTTP forwarding: for the recorded request and every later one on the connection, connect
    /// to the absolute-form URI's host and port (loopback only), rewrite the request line to
    /// origin-form, drop `Proxy-Authorization` and `Proxy-Connection`, and pass the request and
    /// its body (`Content-Length` or chunked) on; the origin's responses flow back as they come.
    /// Ends when the client closes.
    ForwardRelay,
}

/// The acts for one connection.
pub type Script = Vec<Act>;

/// How a target was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// A name, resolved by the proxy (SOCKS5 address type 3, SOCKS4a, an HTTP host name).
    Name(String),
}

/// The destination a client asked the proxy for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub port: u16,
}

/// What happened on one connection, for assertions.
#[derive(Debug, Clone)]
pub struct ConnLog {
    /// When the proxy accepted the connection (before any TLS handshake).
    pub accepted: Instant,
    /// When the first byte from the client was read (after the TLS handshake, for TLS).
    pub first_byte: Option<Instant>,
    /// When the proxy began to write its answer to the tunnel request: the `CONNECT` response
    /// (or 407), the final SOCKS reply (or the refusal of the method or credentials),
    /// [`Act::Reply`], or the first forwarded request to the origin. Taken before the write, so
    /// the client cannot have read the answer earlier.
    pub replied: Option<Instant>,
    /// When that write returned (the answer was in the kernel's hands; TLS: encrypted and
    /// written). The client may read the answer before this instant.
    pub reply_written: Option<Instant>,
    /// Each act performed, with the time it completed.
    pub events: Vec<(String, Instant)>,
    /// HTTP request heads the proxy read, as they came.
    pub heads: Vec<String>,
    /// The SOCKS version of the greeting or request (4 or 5).
    pub socks_version: Option<u8>,
    /// The methods a SOCKS5 greeting offered.
    pub socks_methods: Vec<u8>,
    /// The RFC 1929 credentials received.
    pub socks_auth: Option<(String, String)>,
    /// The SOCKS command (1 = connect).
    pub socks_command: Option<u8>,
    /// The SOCKS4 user id.
    pub socks4_user: Option<String>,
    /// The target the client asked for (the last one, for forwarding).
    pub target: Option<Target>,
    /// Why the connection to the target failed or was refused.
    pub connect_error: Option<String>,
    /// The request heads forwarded to the origin (rewritten to origin-form).
    pub origin_heads: Vec<String>,
    /// The first bytes passed on to the origin (relayed or forwarded).
    pub to_origin: Vec<u8>,
    /// Bytes passed on to the origin.
    pub bytes_to_origin: u64,
    /// Bytes passed back from the origin to the client.
    pub bytes_to_client: u64,
    /// Why the script stopped early, if it did (the client closed, a write failed).
    pub error: Option<String>,
    /// The script ran to its end (or to an act that ends it).
    pub finished: bool,
}

impl ConnLog {
    fn new(accepted: Instant) -> ConnLog {
        ConnLog {
            accepted,
            first_byte: None,
            replied: None,
            reply_written: None,
            events: Vec::new(),
            heads: Vec::new(),
            socks_version: None,
            socks_methods: Vec::new(),
            socks_auth: None,
            socks_command: None,
            socks4_user: None,
            target: None,
            connect_error: None,
            origin_heads: Vec::new(),
            to_origin: Vec::new(),
            bytes_to_origin: 0,
            bytes_to_client: 0,
            error: None,
            finished: false,
        }
    }

    /// The connection ended (its script finished or stopped with an error).
    pub fn ended(&self) -> bool {
        self.finished || self.error.is_some()
    }

    /// The value of header `name` in request head `i`, if present (case-insensitive name).
    pub fn header(&self, i: usize, name: &str) -> Option<String> {
        header_value(self.heads.get(i)?, name)
    }
}

/// How the proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Serve TLS (an `https://` proxy) with a fresh throw-away CA.
    pub tls: bool,
    /// The longest a connection lives (its script and relay).
    pub lifetime: Duration,
    /// Names the proxy resolves itself (each to a loopback address), besides `localhost`.
    pub hosts: Vec<(String, IpAddr)>,
    /// Run on a thread of its own (its own single-threaded runtime) rather than as a task of
    /// the test's runtime: its stamps are then taken when the kernel hands it the connection or
    /// the bytes, not when the test's runtime gets round to it (for comparing them with the
    /// client's profile within a millisecond).
    pub own_thread: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            tls: false,
            lifetime: CONNECTION_LIFETIME,
            hosts: Vec::new(),
            own_thread: false,
        }
    }
}

/// A running scripted proxy; dropping it stops the proxy and every connection.
pub struct ScriptedProxy {
    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` with TLS).
    pub url: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// PEM of the CA that signed the proxy's certificate (TLS only).
    pub ca_pem: Option<String>,
    accepted: Arc<AtomicUsize>,
    logs: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>>,
    runner: Runner,
}

/// Where the accept loop runs.
enum Runner {
    /// A task of the test's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// A thread with a runtime of its own, stopped by dropping the sender.
    Thread {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

impl Drop for ScriptedProxy {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Task(task) => task.abort(),
            Runner::Thread { stop, thread } => {
                // The thread's runtime ends its block_on, and dropping the runtime drops every
                // connection's task: a prompt join.
                drop(stop.take());
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

impl ScriptedProxy {
    /// A plain-TCP proxy on 127.0.0.1 with the default options.
    pub async fn start(scripts: Vec<Script>) -> ScriptedProxy {
        ScriptedProxy::start_with(ProxyOptions::default(), scripts).await
    }

    /// A proxy on 127.0.0.1 with `options`.
    pub async fn start_with(options: ProxyOptions, scripts: Vec<Script>) -> ScriptedProxy {
        assert!(!scripts.is_empty(), "at least one script");
        for (name, ip) in &options.hosts {
            assert!(
                ip.is_loopback(),
                "the scripted proxy resolves names to loopback addresses only: {name} -> {ip}"
            );
        }
        // A std listener: it is registered with whichever runtime runs the accept loop.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (acceptor, ca_pem) = if options.tls {
            let (acceptor, pem) = tls_acceptor();
            (Some(acceptor), Some(pem))
        } else {
            (None, None)
        };
        let url = if options.tls {
            format!("https://localhost:{}", addr.port())
        } else {
            format!("http://127.0.0.1:{}", addr.port())
        };
        let accepted = Arc::new(AtomicUsize::new(0));
        let logs: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>> = Arc::default();
        let own_thread = options.own_thread;
        let run = {
            let (accepted, logs) = (accepted.clone(), logs.clone());
            async move {
                let listener = TcpListener::from_std(listener).unwrap();
                accept_loop(
                    listener,
                    acceptor,
                    Arc::new(options),
                    scripts,
                    accepted,
                    logs,
                )
                .await
            }
        };
        let runner = if own_thread {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("scripted-proxy".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        tokio::select! {
                            () = run => {}
                            _ = stopped => {}
                        }
                    });
                })
                .unwrap();
            Runner::Thread {
                stop: Some(stop),
                thread: Some(thread),
            }
        } else {
            Runner::Task(tokio::spawn(run))
        };
        ScriptedProxy {
            url,
            addr,
            ca_pem,
            accepted,
            logs,
            runner,
        }
    }

    /// `socks5://127.0.0.1:PORT` (and the like) for this proxy: `scheme://127.0.0.1:PORT`.
    pub fn url_as(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// What happened on connection `i` so far (0-based, in accept order); panics if there is
    /// no such connection.
    pub fn log(&self, i: usize) -> ConnLog {
        let logs = self.logs.lock().unwrap();
        match logs.get(i) {
            Some(l) => l.lock().unwrap().clone(),
            None => panic!(
                "the scripted proxy has no connection {i} (accepted {})",
                logs.len()
            ),
        }
    }

    /// Every connection's log so far.
    pub fn logs(&self) -> Vec<ConnLog> {
        let logs = self.logs.lock().unwrap();
        logs.iter().map(|l| l.lock().unwrap().clone()).collect()
    }

    /// Connection `i`'s log once it has ended (polled for at most `within`); panics with the log
    /// so far if it has not.
    pub async fn ended_log(&self, i: usize, within: Duration) -> ConnLog {
        let deadline = Instant::now() + within;
        loop {
            if self.accepted() > i {
                let log = self.log(i);
                if log.ended() {
                    return log;
                }
                if Instant::now() > deadline {
                    panic!("connection {i} has not ended after {within:?}: {log:#?}");
                }
            } else if Instant::now() > deadline {
                panic!("the scripted proxy accepted no connection {i} in {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Well-behaved scripts, one for each kind of proxy.
pub mod presets {
    use super::{Act, Script};

    /// Credentials the proxy demands, and the realm it names in a 407.
    #[derive(Debug, Clone)]
    pub struct BasicAuth {
        pub user: String,
        pub password: String,
        pub realm: String,
    }

    impl BasicAuth {
        pub fn new(user: &str, password: &str, realm: &str) -> BasicAuth {
            BasicAuth {
                user: user.into(),
                password: password.into(),
                realm: realm.into(),
            }
        }
    }

    fn require(auth: Option<BasicAuth>) -> Option<Act> {
        auth.map(|a| Act::RequireProxyAuth {
            user: a.user,
            password: a.password,
            realm: a.realm,
        })
    }

    /// HTTP `CONNECT`: read the request, check credentials (407 with the realm otherwise),
    /// connect, answer 200 (403/502 on failure), relay.
    pub fn http_connect(auth: Option<BasicAuth>) -> Script {
        let mut s = vec![Act::ReadConnectHead];
        s.extend(require(auth));
        s.extend([Act::ConnectTarget, Act::ReplyConnect, Act::Relay]);
        s
    }

    /// HTTP forwarding of absolute-form requests (every request on the connection).
    pub fn http_forward(auth: Option<BasicAuth>) -> Script {
        let mut s = vec![Act::ReadConnectHead];
        s.extend(require(auth));
        s.push(Act::ForwardRelay);
        s
    }

    /// SOCKS5 without authentication.
    pub fn socks5_no_auth() -> Script {
        vec![
            Act::ReadSocksGreeting,
            Act::ChooseSocksMethod(0),
            Act::ReadSocksRequest,
            Act::ConnectTarget,
            Act::ReplySocks,
            Act::Relay,
        ]
    }

    /// SOCKS5 with username/password (RFC 1929) as the only method.
    pub fn socks5_user_password(user: &str, password: &str) -> Script {
        vec![
            Act::ReadSocksGreeting,
            Act::ChooseSocksMethod(2),
            Act::ReadSocksAuth,
            Act::CheckSocksAuth {
                user: user.into(),
                password: password.into(),
            },
            Act::ReadSocksRequest,
            Act::ConnectTarget,
            Act::ReplySocks,
            Act::Relay,
        ]
    }

    /// SOCKS4 and SOCKS4a.
    pub fn socks4a() -> Script {
        vec![
            Act::ReadSocks4Request,
            Act::ConnectTarget,
            Act::ReplySocks4,
            Act::Relay,
        ]
    }
}

type Logs = Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>>;

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    options: Arc<ProxyOptions>,
    scripts: Vec<Script>,
    accepted: Arc<AtomicUsize>,
    logs: Logs,
) {
    // Owned here: aborting the accept loop drops the set, which aborts every connection.
    let mut connections = JoinSet::new();
    for i in 0..MAX_CONNECTIONS {
        let Ok((tcp, _)) = listener.accept().await else {
            break;
        };
        let log = Arc::new(Mutex::new(ConnLog::new(Instant::now())));
        logs.lock().unwrap().push(log.clone());
        accepted.fetch_add(1, Ordering::SeqCst);
        let script = scripts[i.min(scripts.len() - 1)].clone();
        let acceptor = acceptor.clone();
        let options = options.clone();
        connections.spawn(async move {
            let lifetime = options.lifetime;
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
                perform(conn, script, options.clone(), log.clone()).await;
            };
            if tokio::time::timeout(lifetime, run).await.is_err() {
                log.lock().unwrap().error = Some("connection lifetime exceeded".into());
            }
        });
        // Reap finished connections so the set does not grow with them.
        while connections.try_join_next().is_some() {}
    }
    // The accept budget is spent: keep the open connections' scripts running.
    while connections.join_next().await.is_some() {}
}

/// A client connection, plain or TLS.
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
}

impl AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The outcome of [`Act::ConnectTarget`].
enum Upstream {
    None,
    Connected(TcpStream),
    NotAllowed,
    Refused,
    TimedOut,
    Failed,
    CommandNotSupported,
}

/// The connection's state between acts.
struct Session {
    conn: Conn,
    /// Bytes read and not yet consumed (the rest of a head's segment, a body's start).
    buf: Vec<u8>,
    options: Arc<ProxyOptions>,
    log: Arc<Mutex<ConnLog>>,
    upstream: Upstream,
    /// Credentials every forwarded request must carry (set by `RequireProxyAuth`).
    required_auth: Option<(String, String, String)>,
}

enum Flow {
    Next,
    End,
}

async fn perform(conn: Conn, script: Script, options: Arc<ProxyOptions>, log: Arc<Mutex<ConnLog>>) {
    let mut session = Some(Session {
        conn,
        buf: Vec::new(),
        options,
        log: log.clone(),
        upstream: Upstream::None,
        required_auth: None,
    });
    for act in script {
        let name = act_name(&act);
        // `Relay` and `ForwardRelay` take the session (they split the connection) and end it.
        let Some(s) = session.as_mut() else { break };
        let flow = match act {
            Act::Relay => session.take().unwrap().relay().await.map(|()| Flow::End),
            Act::ForwardRelay => session.take().unwrap().forward().await.map(|()| Flow::End),
            act => s.act(act).await,
        };
        let now = Instant::now();
        let mut log = log.lock().unwrap();
        log.events.push((name, now));
        match flow {
            Ok(Flow::Next) => {}
            Ok(Flow::End) => break,
            Err(e) => {
                log.error = Some(e);
                return;
            }
        }
    }
    log.lock().unwrap().finished = true;
}

/// The act's variant name, for the log's events.
fn act_name(act: &Act) -> String {
    let debug = format!("{act:?}");
    debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

impl Session {
    async fn act(&mut self, act: Act) -> Result<Flow, String> {
        match act {
            Act::ReadConnectHead => {
                let head = self.read_head().await?;
                let target = request_target(&head);
                let mut log = self.log.lock().unwrap();
                log.heads.push(head);
                if let Some(t) = target {
                    log.target = Some(t);
                }
            }
            Act::RequireProxyAuth {
                user,
                password,
                realm,
            } => {
                let head = self.log.lock().unwrap().heads.last().cloned();
                let head = head.ok_or("RequireProxyAuth before any request head")?;
                if !basic_auth_matches(&head, &user, &password) {
                    self.write_reply(&auth_required(&realm)).await?;
                    let _ = self.conn.shutdown().await;
                    return Ok(Flow::End);
                }
                self.required_auth = Some((user, password, realm));
            }
            Act::ReadSocksGreeting => {
                let head = self.take(2).await?;
                let methods = self.take(usize::from(head[1])).await?;
                let mut log = self.log.lock().unwrap();
                log.socks_version = Some(head[0]);
                log.socks_methods = methods;
            }
            Act::ChooseSocksMethod(method) => {
                let offered = self.log.lock().unwrap().socks_methods.contains(&method);
                if offered {
                    self.write(&[5, method]).await?;
                } else {
                    self.write_reply(&[5, 0xFF]).await?;
                    let _ = self.conn.shutdown().await;
                    return Ok(Flow::End);
                }
            }
            Act::WriteSocksMethod(method) => self.write(&[5, method]).await?,
            Act::ReadSocksAuth => {
                let head = self.take(2).await?;
                let user = self.take(usize::from(head[1])).await?;
                let plen = self.take(1).await?[0];
                let password = self.take(usize::from(plen)).await?;
                self.log.lock().unwrap().socks_auth = Some((
                    String::from_utf8_lossy(&user).into_owned(),
                    String::from_utf8_lossy(&password).into_owned(),
                ));
            }
            Act::CheckSocksAuth { user, password } => {
                let got = self.log.lock().unwrap().socks_auth.clone();
                if got == Some((user, password)) {
                    self.write(&[1, 0]).await?;
                } else {
                    self.write_reply(&[1, 1]).await?;
                    let _ = self.conn.shutdown().await;
                    return Ok(Flow::End);
                }
            }
            Act::WriteSocksAuthStatus(status) => self.write(&[1, status]).await?,
            Act::ReadSocksRequest => {
                let head = self.take(4).await?;
                let host = match head[3] {
                    1 => {
                        let a = self.take(4).await?;
                        Host::Ipv4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
                    }
                    3 => {
                        let len = self.take(1).await?[0];
                        let name = self.take(usize::from(len)).await?;
                        Host::Name(String::from_utf8_lossy(&name).into_owned())
                    }
                    4 => {
                        let a: [u8; 16] = self.take(16).await?.try_into().unwrap();
                        Host::Ipv6(Ipv6Addr::from(a))
                    }
                    other => {
                        // The address's length is unknown: answer "address type not supported"
                        // (8) as a SOCKS5 server does, and end.
                        {
                            let mut log = self.log.lock().unwrap();
                            log.socks_version = Some(head[0]);
                            log.socks_command = Some(head[1]);
                            log.connect_error = Some(format!("address type {other}"));
                        }
                        self.write_reply(&socks5_reply(8, None)).await?;
                        let _ = self.conn.shutdown().await;
                        return Ok(Flow::End);
                    }
                };
                let p = self.take(2).await?;
                let mut log = self.log.lock().unwrap();
                log.socks_version = Some(head[0]);
                log.socks_command = Some(head[1]);
                log.target = Some(Target {
                    host,
                    port: u16::from_be_bytes([p[0], p[1]]),
                });
            }
            Act::ReadSocks4Request => {
                let head = self.take(8).await?;
                let user = self.take_cstr().await?;
                let ip = Ipv4Addr::new(head[4], head[5], head[6], head[7]);
                let o = ip.octets();
                // SOCKS4a: 0.0.0.x (x != 0) means "the host name follows".
                let host = if o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] != 0 {
                    Host::Name(self.take_cstr().await?)
                } else {
                    Host::Ipv4(ip)
                };
                let mut log = self.log.lock().unwrap();
                log.socks_version = Some(head[0]);
                log.socks_command = Some(head[1]);
                log.socks4_user = Some(user);
                log.target = Some(Target {
                    host,
                    port: u16::from_be_bytes([head[2], head[3]]),
                });
            }
            Act::ConnectTarget => {
                let (target, command) = {
                    let log = self.log.lock().unwrap();
                    (log.target.clone(), log.socks_command)
                };
                let target = target.ok_or("ConnectTarget before any target was read")?;
                // Only SOCKS's CONNECT (1) is served: BIND and UDP ASSOCIATE are not.
                self.upstream = if command.is_some_and(|c| c != 1) {
                    self.log.lock().unwrap().connect_error =
                        Some(format!("command {} not supported", command.unwrap()));
                    Upstream::CommandNotSupported
                } else {
                    self.connect(&target).await
                };
            }
            Act::ReplyConnect => {
                let reply: &[u8] = match &self.upstream {
                    Upstream::Connected(_) => b"HTTP/1.1 200 Connection established\r\n\r\n",
                    Upstream::NotAllowed => {
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    }
                    _ => b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                };
                self.write_reply(reply).await?;
                if !matches!(self.upstream, Upstream::Connected(_)) {
                    let _ = self.conn.shutdown().await;
                    return Ok(Flow::End);
                }
            }
            Act::ReplySocks => {
                let (code, bound) = match &self.upstream {
                    Upstream::Connected(s) => (0, s.local_addr().ok()),
                    Upstream::NotAllowed => (2, None),
                    Upstream::Refused => (5, None),
                    Upstream::TimedOut => (6, None),
                    Upstream::CommandNotSupported => (7, None),
                    Upstream::None | Upstream::Failed => (1, None),
                };
                self.write_reply(&socks5_reply(code, bound)).await?;
                if code != 0 {
                    let _ = self.conn.shutdown().await;
                    return Ok(Flow::End);
                }
            }
            Act::ReplySocks4 => {
                let code = if matches!(self.upstream, Upstream::Connected(_)) {
                    90
                } else {
                    91
                };
                self.write_reply(&[0, code, 0, 0, 0, 0, 0, 0]).await?;
                if code != 90 {
                    let _ = self.conn.shutdown().await;
                    return Ok(Flow::End);
                }
            }
            Act::WriteSocksReply(code) => self.write_reply(&socks5_reply(code, None)).await?,
            Act::WriteSocks4Reply(code) => self.write_reply(&[0, code, 0, 0, 0, 0, 0, 0]).await?,
            Act::Reply(bytes) => self.write_reply(&bytes).await?,
            Act::Write(bytes) => self.write(&bytes).await?,
            Act::Sleep(d) => tokio::time::sleep(d).await,
            Act::Close => {
                // Best effort: the peer may be gone already.
                let _ = self.conn.shutdown().await;
                return Ok(Flow::End);
            }
            Act::Reset => {
                socket2::SockRef::from(self.conn.tcp())
                    .set_linger(Some(Duration::ZERO))
                    .map_err(|e| format!("SO_LINGER: {e}"))?;
                return Ok(Flow::End);
            }
            Act::Hold => {
                // Discard until the client closes; bounded by the connection's lifetime.
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    match self.conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return Ok(Flow::End),
                        Ok(_) => self.stamp_first_byte(),
                    }
                }
            }
            Act::Relay | Act::ForwardRelay => unreachable!("perform runs the relays"),
        }
        Ok(Flow::Next)
    }

    fn stamp_first_byte(&self) {
        let mut log = self.log.lock().unwrap();
        if log.first_byte.is_none() {
            log.first_byte = Some(Instant::now());
        }
    }

    /// Read more bytes into `buf`; `Err` at EOF.
    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = vec![0u8; 64 * 1024];
        match self.conn.read(&mut chunk).await {
            Ok(0) => Err("the client closed the connection".into()),
            Ok(n) => {
                self.stamp_first_byte();
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Exactly `n` bytes (n ≤ 64 KiB).
    async fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A NUL-terminated string of at most 255 bytes (SOCKS4's user id and host name).
    async fn take_cstr(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == 0) {
                let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..=end);
                return Ok(s);
            }
            if self.buf.len() > 255 {
                return Err("a SOCKS4 string longer than 255 bytes".into());
            }
            self.fill().await?;
        }
    }

    async fn read_head(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                self.buf.drain(..end + 4);
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err("request head too large".into());
            }
            self.fill().await?;
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.conn
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.conn.flush().await.map_err(|e| format!("flush: {e}"))
    }

    /// Write the answer to the tunnel request, stamped before and after.
    async fn write_reply(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.log.lock().unwrap().replied = Some(Instant::now());
        self.write(bytes).await?;
        self.log.lock().unwrap().reply_written = Some(Instant::now());
        Ok(())
    }

    async fn connect(&self, target: &Target) -> Upstream {
        connect(&self.options, &self.log, target).await
    }

    /// Relay both ways until both sides have closed.
    async fn relay(mut self) -> Result<(), String> {
        let upstream = match std::mem::replace(&mut self.upstream, Upstream::None) {
            Upstream::Connected(s) => s,
            Upstream::None => {
                let target = self.log.lock().unwrap().target.clone();
                let target = target.ok_or("Relay without a target")?;
                match self.connect(&target).await {
                    Upstream::Connected(s) => s,
                    _ => return Err("Relay: the target cannot be reached".into()),
                }
            }
            _ => return Err("Relay: the target cannot be reached".into()),
        };
        let log = &*self.log;
        let pending = std::mem::take(&mut self.buf);
        let (mut client_r, mut client_w) = tokio::io::split(self.conn);
        let (mut origin_r, mut origin_w) = upstream.into_split();
        // Each direction, when it ends (EOF or error), passes the end on to the other side.
        let up = async {
            let copied = async {
                if !pending.is_empty() {
                    origin_w
                        .write_all(&pending)
                        .await
                        .map_err(|e| format!("relay to origin: {e}"))?;
                    record_to_origin(log, &pending);
                }
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_r.read(&mut chunk).await {
                        Ok(n) => n,
                        // A TLS client that closes without close_notify: its end all the same.
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                        Err(e) => return Err(format!("relay from client: {e}")),
                    };
                    if n == 0 {
                        return Ok::<(), String>(());
                    }
                    origin_w
                        .write_all(&chunk[..n])
                        .await
                        .map_err(|e| format!("relay to origin: {e}"))?;
                    record_to_origin(log, &chunk[..n]);
                }
            }
            .await;
            let _ = origin_w.shutdown().await;
            copied
        };
        let down = async {
            let copied = async {
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = origin_r
                        .read(&mut chunk)
                        .await
                        .map_err(|e| format!("relay from origin: {e}"))?;
                    if n == 0 {
                        return Ok::<(), String>(());
                    }
                    client_w
                        .write_all(&chunk[..n])
                        .await
                        .map_err(|e| format!("relay to client: {e}"))?;
                    log.lock().unwrap().bytes_to_client += n as u64;
                }
            }
            .await;
            let _ = client_w.shutdown().await;
            copied
        };
        let (a, b) = tokio::join!(up, down);
        a.and(b)
    }

    /// HTTP forwarding: one request at a time, each to its own absolute-form URI's origin; the
    /// origin's bytes flow back to the client as they come. Ends when the client closes.
    async fn forward(mut self) -> Result<(), String> {
        let log = self.log.clone();
        let mut head = log
            .lock()
            .unwrap()
            .heads
            .last()
            .cloned()
            .ok_or("ForwardRelay before any request head")?;
        let required_auth = self.required_auth.take();
        let (client_r, client_w) = tokio::io::split(self.conn);
        let client_w = Arc::new(tokio::sync::Mutex::new(client_w));
        let mut reader = ClientReader {
            inner: client_r,
            buf: std::mem::take(&mut self.buf),
            log: log.clone(),
        };
        // The origin's relay back to the client runs in this set: dropping the connection's
        // future (the proxy dropped, the lifetime over) drops the set and aborts it.
        let mut downstream = JoinSet::new();
        let mut origin: Option<(Target, tokio::net::tcp::OwnedWriteHalf)> = None;
        let mut first = true;
        loop {
            if !first {
                match reader.read_head().await? {
                    Some(h) => {
                        log.lock().unwrap().heads.push(h.clone());
                        head = h;
                    }
                    None => break,
                }
                if let Some((user, password, realm)) = &required_auth {
                    if !basic_auth_matches(&head, user, password) {
                        answer_and_close(&client_w, &auth_required(realm), &log).await;
                        return Ok(());
                    }
                }
            }
            first = false;
            let Some((target, rewritten)) = origin_form(&head) else {
                answer_and_close(&client_w, BAD_REQUEST, &log).await;
                return Err(format!("not an absolute-form http:// request: {head:?}"));
            };
            log.lock().unwrap().target = Some(target.clone());
            if origin.as_ref().is_none_or(|(t, _)| *t != target) {
                // A new origin: the previous one's response is complete (the client sent this
                // request after reading it), so its relay can go.
                downstream.abort_all();
                let stream = match connect(&self.options, &log, &target).await {
                    Upstream::Connected(s) => s,
                    Upstream::NotAllowed => {
                        answer_and_close(&client_w, FORBIDDEN, &log).await;
                        return Ok(());
                    }
                    _ => {
                        answer_and_close(&client_w, BAD_GATEWAY, &log).await;
                        return Ok(());
                    }
                };
                let (mut origin_r, origin_w) = stream.into_split();
                let client_w = client_w.clone();
                let log = log.clone();
                downstream.spawn(async move {
                    let mut chunk = vec![0u8; 64 * 1024];
                    loop {
                        let n = match origin_r.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if client_w.lock().await.write_all(&chunk[..n]).await.is_err() {
                            break;
                        }
                        log.lock().unwrap().bytes_to_client += n as u64;
                    }
                });
                origin = Some((target, origin_w));
            }
            let (_, origin_w) = origin.as_mut().unwrap();
            let first_reply = {
                let mut l = log.lock().unwrap();
                l.origin_heads.push(rewritten.clone());
                let first = l.replied.is_none();
                if first {
                    l.replied = Some(Instant::now());
                }
                first
            };
            origin_w
                .write_all(rewritten.as_bytes())
                .await
                .map_err(|e| format!("forward to origin: {e}"))?;
            if first_reply {
                log.lock().unwrap().reply_written = Some(Instant::now());
            }
            record_to_origin(&log, rewritten.as_bytes());
            reader.copy_body(&head, origin_w).await?;
        }
        // The client closed: let the origin see it, and the last response finish.
        if let Some((_, mut w)) = origin {
            let _ = w.shutdown().await;
        }
        while downstream.join_next().await.is_some() {}
        let _ = client_w.lock().await.shutdown().await;
        Ok(())
    }
}

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const FORBIDDEN: &[u8] =
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const BAD_GATEWAY: &[u8] =
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Write a final answer on a forwarding connection (stamped as the reply if it is the first),
/// and close.
async fn answer_and_close(
    client_w: &tokio::sync::Mutex<WriteHalf<Conn>>,
    answer: &[u8],
    log: &Mutex<ConnLog>,
) {
    let mut w = client_w.lock().await;
    let first = {
        let mut l = log.lock().unwrap();
        let first = l.replied.is_none();
        if first {
            l.replied = Some(Instant::now());
        }
        first
    };
    let _ = w.write_all(answer).await;
    let _ = w.flush().await;
    if first {
        log.lock().unwrap().reply_written = Some(Instant::now());
    }
    let _ = w.shutdown().await;
}

/// The client's side of a forwarding connection: request heads and bodies, read with a buffer.
struct ClientReader {
    inner: ReadHalf<Conn>,
    buf: Vec<u8>,
    log: Arc<Mutex<ConnLog>>,
}

impl ClientReader {
    /// More bytes into `buf`; `false` at EOF.
    async fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = match self.inner.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS client that closes without close_notify: its end all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("read: {e}")),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next request head; `None` if the client closed between requests.
    async fn read_head(&mut self) -> Result<Option<String>, String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                self.buf.drain(..end + 4);
                return Ok(Some(head));
            }
            if self.buf.len() > MAX_HEAD {
                return Err("request head too large".into());
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err("the client closed in the middle of a request head".into())
                };
            }
        }
    }

    /// One line with its CRLF (chunked framing), at most 8 KiB.
    async fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                return Ok(self.buf.drain(..end + 2).collect());
            }
            if self.buf.len() > 8192 {
                return Err("a chunk-size line longer than 8 KiB".into());
            }
            if !self.fill().await? {
                return Err("the client closed in the middle of a chunked body".into());
            }
        }
    }

    /// Pass `n` bytes on to `to`.
    async fn copy_exact(
        &mut self,
        mut n: u64,
        to: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> Result<(), String> {
        while n > 0 {
            if self.buf.is_empty() && !self.fill().await? {
                return Err(format!("the client closed with {n} body bytes to come"));
            }
            let take = (self.buf.len() as u64).min(n) as usize;
            let bytes: Vec<u8> = self.buf.drain(..take).collect();
            to.write_all(&bytes)
                .await
                .map_err(|e| format!("forward to origin: {e}"))?;
            record_to_origin(&self.log, &bytes);
            n -= take as u64;
        }
        Ok(())
    }

    /// Pass the body of the request with `head` on (`Content-Length` or chunked).
    async fn copy_body(
        &mut self,
        head: &str,
        to: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> Result<(), String> {
        let chunked = header_value(head, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if !chunked {
            let len = header_value(head, "content-length")
                .map(|v| v.trim().parse::<u64>())
                .transpose()
                .map_err(|e| format!("bad Content-Length: {e}"))?
                .unwrap_or(0);
            return self.copy_exact(len, to).await;
        }
        loop {
            let line = self.line().await?;
            let text = String::from_utf8_lossy(&line);
            let size = text.trim_end().split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size line {text:?}"))?;
            to.write_all(&line)
                .await
                .map_err(|e| format!("forward to origin: {e}"))?;
            record_to_origin(&self.log, &line);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let line = self.line().await?;
                    to.write_all(&line)
                        .await
                        .map_err(|e| format!("forward to origin: {e}"))?;
                    record_to_origin(&self.log, &line);
                    if line == b"\r\n" {
                        return Ok(());
                    }
                }
            }
            self.copy_exact(size + 2, to).await?;
        }
    }
}

/// Where `target` is, if the proxy may go there: loopback addresses, `localhost`, and the
/// names of [`ProxyOptions::hosts`].
fn resolve(options: &ProxyOptions, target: &Target) -> Option<IpAddr> {
    let ip = match &target.host {
        Host::Ipv4(a) => IpAddr::V4(*a),
        Host::Ipv6(a) => IpAddr::V6(*a),
        Host::Name(name) => {
            let name = name.trim_end_matches('.');
            if name.eq_ignore_ascii_case("localhost") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                options
                    .hosts
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, ip)| *ip)?
            }
        }
    };
    ip.is_loopback().then_some(ip)
}

/// Connect to `target` if the proxy may go there, recording why not in the log.
async fn connect(options: &ProxyOptions, log: &Mutex<ConnLog>, target: &Target) -> Upstream {
    let Some(ip) = resolve(options, target) else {
        log.lock().unwrap().connect_error =
            Some(format!("not allowed: {target:?} is not on this machine"));
        return Upstream::NotAllowed;
    };
    let outcome = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect(SocketAddr::new(ip, target.port)),
    )
    .await;
    let (upstream, error) = match outcome {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            (Upstream::Connected(s), None)
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            (Upstream::Refused, Some(e.to_string()))
        }
        Ok(Err(e)) => (Upstream::Failed, Some(e.to_string())),
        Err(_) => (Upstream::TimedOut, Some("connect timed out".into())),
    };
    log.lock().unwrap().connect_error = error;
    upstream
}

fn record_to_origin(log: &Mutex<ConnLog>, bytes: &[u8]) {
    let mut l = log.lock().unwrap();
    l.bytes_to_origin += bytes.len() as u64;
    let room = ORIGIN_BYTES_KEPT.saturating_sub(l.to_origin.len());
    l.to_origin
        .extend_from_slice(&bytes[..room.min(bytes.len())]);
}

/// A SOCKS5 reply with `code` and the bound address (0.0.0.0:0 when there is none).
fn socks5_reply(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut r = vec![5, code, 0];
    match bound {
        Some(SocketAddr::V6(a)) => {
            r.push(4);
            r.extend_from_slice(&a.ip().octets());
            r.extend_from_slice(&a.port().to_be_bytes());
        }
        Some(SocketAddr::V4(a)) => {
            r.push(1);
            r.extend_from_slice(&a.ip().octets());
            r.extend_from_slice(&a.port().to_be_bytes());
        }
        None => r.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0]),
    }
    r
}

/// A 407 naming `realm`, closing the connection.
fn auth_required(realm: &str) -> Vec<u8> {
    let body = "proxy authentication required\n";
    format!(
        "HTTP/1.1 407 Proxy Authentication Required\r\n\
         Proxy-Authenticate: Basic realm=\"{realm}\"\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The head carries `Proxy-Authorization: Basic base64(user:password)`.
fn basic_auth_matches(head: &str, user: &str, password: &str) -> bool {
    let expected = base64(format!("{user}:{password}").as_bytes());
    header_value(head, "proxy-authorization").is_some_and(|v| {
        let mut parts = v.split_whitespace();
        parts
            .next()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"))
            && parts.next() == Some(expected.as_str())
            && parts.next().is_none()
    })
}

/// Standard base 64 with padding (RFC 4648), for `Basic` credentials.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let w = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((w >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The value of the first header `name` in `head` (case-insensitive name, trimmed value).
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The target a request head names: `CONNECT host:port`, or an absolute-form `http://` URI.
fn request_target(head: &str) -> Option<Target> {
    let mut words = head.lines().next()?.split_whitespace();
    let method = words.next()?;
    let uri = words.next()?;
    if method.eq_ignore_ascii_case("CONNECT") {
        parse_authority(uri, None)
    } else {
        origin_form(head).map(|(t, _)| t)
    }
}

/// `host:port`, `[v6]:port`, or (with a default port) `host`.
fn parse_authority(authority: &str, default_port: Option<u16>) -> Option<Target> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port?,
            None => return None,
        };
        (Host::Ipv6(v6.parse().ok()?), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default_port?),
        };
        let host = match host.parse::<Ipv4Addr>() {
            Ok(a) => Host::Ipv4(a),
            Err(_) if !host.is_empty() => Host::Name(host.to_string()),
            Err(_) => return None,
        };
        (host, port)
    };
    Some(Target { host, port })
}

/// An absolute-form `http://` request's target and the head rewritten for the origin: the
/// request line in origin-form, without `Proxy-Authorization` and `Proxy-Connection`.
fn origin_form(head: &str) -> Option<(Target, String)> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let mut words = request_line.split(' ');
    let (method, uri, version) = (words.next()?, words.next()?, words.next()?);
    let rest = uri.strip_prefix("http://").or_else(|| {
        uri.get(..7)
            .filter(|p| p.eq_ignore_ascii_case("http://"))
            .map(|_| &uri[7..])
    })?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let target = parse_authority(authority, Some(80))?;
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("proxy-authorization")
            || name.eq_ignore_ascii_case("proxy-connection")
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    // `head` ends with CRLF CRLF: the split's last two pieces were empty, and each got a CRLF.
    out.truncate(out.len() - 2);
    Some((target, out))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A fresh CA and a leaf for `localhost` / `127.0.0.1` signed by it, for an `https://` proxy.
fn tls_acceptor() -> (TlsAcceptor, String) {
    let certs = crate::common::certs::throwaway("uploadfile scripted proxy test CA");
    let chain: Vec<CertificateDer<'static>> = vec![CertificateDer::from(certs.leaf_der)];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certs.key_der));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (TlsAcceptor::from(Arc::new(config)), certs.ca_pem)
}
