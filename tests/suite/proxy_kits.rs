//! The proxy test kits work on their own (issue 14), before the library can use a proxy: each
//! real proxy (squid, danted, microsocks; `common/proxies.rs`) and each well-behaved preset of
//! the scripted proxy (`common/scripted_proxy.rs`) carries a small multipart upload to the
//! in-process sink, driven by a hand-written client over tokio TCP (no curl): an HTTP `CONNECT`
//! or a SOCKS handshake by hand, then an HTTP/1.1 `POST` through the tunnel, plain or TLS, and the
//! sink's verdict (the file's SHA-256) checked. The auth variants are refused as each proxy
//! refuses them (squid's 407 with its realm, the SOCKS status codes), a kit's processes are gone
//! once its guard drops, and the scripted proxy never reaches beyond the machine.
//!
//! A real proxy that cannot be had here (not installed, or not root where root is needed) makes
//! its test print `skipped: <reason>` and pass. Every network step is bounded ([`STEP`]).

use crate::common;
use crate::proxies::{
    leftovers, sha256_crypt, Dante, DanteOptions, Microsocks, MicrosocksOptions, ProcessMark,
    Squid, SquidOptions, SQUID_REALM,
};
use crate::scripted_proxy::{
    base64, header_value, presets, Act, Host, ProxyOptions, ScriptedProxy, Target,
};

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use uploadfile_sink::SinkHandle;

/// The longest any one step (a handshake, an exchange) may take before the test calls it a hang.
const STEP: Duration = Duration::from_secs(5);
/// The file the uploads carry.
const CONTENT: &[u8] = b"through the proxy, byte for byte\n";
const BOUNDARY: &str = "uploadfile-proxy-kit-boundary";

/// `Ok(kit)` or print why it is skipped and return from the test.
macro_rules! start_or_skip {
    ($start:expr) => {
        match $start {
            Ok(kit) => kit,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return;
            }
        }
    };
}

/// `fut`, or a panic naming `what` if it takes longer than [`STEP`].
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress in {STEP:?}"),
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A response as the hand-written client read it.
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        header_value(&self.head, name)
    }
}

fn multipart_body() -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"kit.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(CONTENT);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The small multipart `POST` to `request_target` (origin-form `/upload` through a tunnel,
/// absolute-form `http://...` to a forward proxy), with `extra` header lines.
fn post_request(request_target: &str, host: &str, extra: &[String]) -> Vec<u8> {
    let body = multipart_body();
    let mut req = format!(
        "POST {request_target} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Read one response (its body by `Content-Length`, chunked framing, or to EOF); `buf` keeps
/// what was read past it.
async fn read_response(io: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Response {
    let head_end = loop {
        if let Some(end) = common::find(buf, b"\r\n\r\n") {
            break end + 4;
        }
        assert!(buf.len() < 64 * 1024, "response head too large");
        fill(io, buf)
            .await
            .unwrap_or_else(|| panic!("EOF before a response head: {buf:?}"));
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
    let chunked = header_value(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = common::find(buf, b"\r\n") {
                    break end;
                }
                fill(io, buf).await.expect("EOF in a chunked body");
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                fill(io, buf).await.expect("EOF in a chunk");
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else if let Some(len) = header_value(&head, "content-length") {
        let len: usize = len.parse().unwrap();
        while buf.len() < len {
            fill(io, buf).await.expect("EOF in a response body");
        }
        buf.drain(..len).collect()
    } else if status == 200 && head.starts_with("HTTP/1.1 200 Connection established") {
        Vec::new()
    } else {
        while fill(io, buf).await.is_some() {}
        std::mem::take(buf)
    };
    Response { status, head, body }
}

/// Read more into `buf`; `None` at EOF.
async fn fill(io: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match io.read(&mut chunk).await {
        Ok(0) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
        Err(e) => panic!("read: {e}"),
    }
}

/// POST the file over `io` and read the sink's answer.
async fn post(
    io: &mut (impl AsyncRead + AsyncWrite + Unpin),
    request_target: &str,
    host: &str,
    extra: &[String],
) -> Response {
    io.write_all(&post_request(request_target, host, extra))
        .await
        .expect("write the POST");
    io.flush().await.unwrap();
    let mut buf = Vec::new();
    read_response(io, &mut buf).await
}

/// The sink verified the file: 200 and its SHA-256. Returns the verdict.
fn assert_verified(res: &Response) -> Value {
    assert_eq!(
        res.status,
        200,
        "{}{}",
        res.head,
        String::from_utf8_lossy(&res.body)
    );
    let v: Value = serde_json::from_slice(&res.body)
        .unwrap_or_else(|e| panic!("non-JSON ({e}): {}", String::from_utf8_lossy(&res.body)));
    assert_eq!(
        v["files"][0]["sha256"].as_str(),
        Some(hex::encode(Sha256::digest(CONTENT)).as_str()),
        "{v}"
    );
    v
}

/// An HTTP `CONNECT` to `authority` through the proxy at `proxy`; the stream and the proxy's
/// answer (its head; a body for a refusal).
async fn http_connect(
    mut io: impl Io,
    authority: &str,
    auth: Option<(&str, &str)>,
) -> (impl Io, Response) {
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = auth {
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(format!("{user}:{password}").as_bytes())
        ));
    }
    req.push_str("\r\n");
    io.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let res = read_response(&mut io, &mut buf).await;
    if res.status == 200 {
        assert!(buf.is_empty(), "bytes after the CONNECT answer: {buf:?}");
    }
    (io, res)
}

/// How a SOCKS handshake failed.
#[derive(Debug, PartialEq, Eq)]
enum SocksRefusal {
    /// The server chose method 0xFF: none of ours.
    NoAcceptableMethod,
    /// RFC 1929 status (non-zero).
    Auth(u8),
    /// SOCKS5 reply code (non-zero), or SOCKS4 reply code (not 90).
    Reply(u8),
    /// The server closed the connection.
    Closed,
}

/// The SOCKS5 destination.
enum Dest<'a> {
    Ipv4(Ipv4Addr, u16),
    Name(&'a str, u16),
}

/// A SOCKS5 handshake by hand: offer "no auth" (no credentials) or only username/password.
async fn socks5(
    mut io: impl Io,
    dest: Dest<'_>,
    auth: Option<(&str, &str)>,
) -> Result<impl Io, SocksRefusal> {
    let method = if auth.is_some() { 2 } else { 0 };
    io.write_all(&[5, 1, method]).await.unwrap();
    let mut choice = [0u8; 2];
    io.read_exact(&mut choice)
        .await
        .map_err(|_| SocksRefusal::Closed)?;
    assert_eq!(choice[0], 5, "not a SOCKS5 answer: {choice:?}");
    if choice[1] == 0xFF {
        return Err(SocksRefusal::NoAcceptableMethod);
    }
    assert_eq!(choice[1], method, "the server chose a method not offered");
    if let Some((user, password)) = auth {
        let mut req = vec![1, user.len() as u8];
        req.extend_from_slice(user.as_bytes());
        req.push(password.len() as u8);
        req.extend_from_slice(password.as_bytes());
        io.write_all(&req).await.unwrap();
        let mut status = [0u8; 2];
        io.read_exact(&mut status)
            .await
            .map_err(|_| SocksRefusal::Closed)?;
        if status[1] != 0 {
            return Err(SocksRefusal::Auth(status[1]));
        }
    }
    let mut req = vec![5, 1, 0];
    let port = match dest {
        Dest::Ipv4(ip, port) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
            port
        }
        Dest::Name(name, port) => {
            req.push(3);
            req.push(name.len() as u8);
            req.extend_from_slice(name.as_bytes());
            port
        }
    };
    req.extend_from_slice(&port.to_be_bytes());
    io.write_all(&req).await.unwrap();
    let mut reply = [0u8; 4];
    io.read_exact(&mut reply)
        .await
        .map_err(|_| SocksRefusal::Closed)?;
    assert_eq!(reply[0], 5, "not a SOCKS5 reply: {reply:?}");
    // The bound address: its length depends on its type.
    let rest = match reply[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            io.read_exact(&mut len).await.unwrap();
            usize::from(len[0]) + 2
        }
        t => panic!("SOCKS5 reply with address type {t}"),
    };
    let mut bound = vec![0u8; rest];
    io.read_exact(&mut bound)
        .await
        .map_err(|_| SocksRefusal::Closed)?;
    if reply[1] != 0 {
        return Err(SocksRefusal::Reply(reply[1]));
    }
    Ok(io)
}

/// A SOCKS4a handshake by hand: the proxy resolves `name`.
async fn socks4a(mut io: impl Io, name: &str, port: u16) -> Result<impl Io, SocksRefusal> {
    let mut req = vec![4, 1];
    req.extend_from_slice(&port.to_be_bytes());
    req.extend_from_slice(&[0, 0, 0, 1]);
    req.extend_from_slice(b"kit-user\0");
    req.extend_from_slice(name.as_bytes());
    req.push(0);
    io.write_all(&req).await.unwrap();
    let mut reply = [0u8; 8];
    io.read_exact(&mut reply)
        .await
        .map_err(|_| SocksRefusal::Closed)?;
    assert_eq!(reply[0], 0, "not a SOCKS4 reply: {reply:?}");
    if reply[1] != 90 {
        return Err(SocksRefusal::Reply(reply[1]));
    }
    Ok(io)
}

/// TLS to `localhost` over `io`, trusting `ca_pem`.
async fn tls_over(io: impl Io, ca_pem: &str) -> impl Io {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), io)
        .await
        .expect("TLS handshake through the tunnel")
}

async fn tcp(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the proxy")
}

/// A connection to a real proxy; a failure shows the proxy's log.
async fn to_kit(port: u16, log: impl FnOnce() -> String) -> TcpStream {
    match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => panic!(
            "connect to the proxy on port {port}: {e}; its log:\n{}",
            log()
        ),
    }
}

/// `host:port` of the sink as a `CONNECT` authority or `Host`.
fn authority(sink: &SinkHandle) -> String {
    format!("127.0.0.1:{}", sink.addr().port())
}

/// Over a tunnel to `sink`: TLS if the sink has TLS, then the POST, verified.
async fn post_through_tunnel(io: impl Io, sink: &SinkHandle, extra: &[String]) -> Value {
    let host = authority(sink);
    let res = match sink.ca_pem() {
        Some(ca) => {
            let mut tls = tls_over(io, ca).await;
            post(&mut tls, "/upload", &host, extra).await
        }
        None => {
            let mut io = io;
            post(&mut io, "/upload", &host, extra).await
        }
    };
    assert_verified(&res)
}

/// Drop a kit's guard: before, its processes are visible (so the check below can see them);
/// after, none is alive and its directory is gone.
fn drop_and_check(kit: impl Sized, mark: ProcessMark) {
    let running = leftovers(&mark);
    assert!(
        !running.is_empty(),
        "no process of the kit can be seen: {mark:?}"
    );
    eprintln!("{} processes of the kit are running", running.len());
    drop(kit);
    let left = leftovers(&mark);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    assert!(!mark.dir.exists(), "{} is left behind", mark.dir.display());
}

// --- squid -------------------------------------------------------------------------------------

#[tokio::test]
async fn squid_tunnels_connect_to_plain_and_tls_sinks() {
    let started = Instant::now();
    let squid = start_or_skip!(Squid::start(SquidOptions::default()));
    eprintln!(
        "{} on {} (ready in {:?})",
        squid.version(),
        squid.url(),
        started.elapsed()
    );
    // The TLS sink by name, as a client tunnelling to https://localhost:PORT asks for it
    // (squid resolves it from /etc/hosts).
    for tls in [false, true] {
        let sink = common::sink(tls).await;
        let target = if tls {
            format!("localhost:{}", sink.addr().port())
        } else {
            authority(&sink)
        };
        let (io, res) = bounded(
            "CONNECT",
            http_connect(
                to_kit(squid.port(), || squid.cache_log()).await,
                &target,
                None,
            ),
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.head);
        bounded("POST through squid", post_through_tunnel(io, &sink, &[])).await;
        squid.access_log_with(&format!("CONNECT {target} "), Duration::from_secs(3));
    }
    let mark = squid.processes();
    drop_and_check(squid, mark);
    eprintln!("squid test took {:?}", started.elapsed());
}

#[tokio::test]
async fn squid_forwards_absolute_form_requests() {
    let squid = start_or_skip!(Squid::start(SquidOptions::default()));
    let sink = common::sink(false).await;
    let mut io = to_kit(squid.port(), || squid.cache_log()).await;
    let res = bounded(
        "forward POST",
        post(
            &mut io,
            &sink.url("/upload"),
            &authority(&sink),
            &["Connection: close".into()],
        ),
    )
    .await;
    let v = assert_verified(&res);
    // Squid's own marks on what reached the origin, and on the answer.
    assert!(
        v["headers"]["via"]
            .as_str()
            .is_some_and(|via| via.contains("squid")),
        "{v}"
    );
    assert_eq!(v["path"], "/upload", "the origin got origin-form: {v}");
    assert!(
        res.header("via").is_some_and(|via| via.contains("squid")),
        "{}",
        res.head
    );
    squid.access_log_with(
        &format!("POST {} ", sink.url("/upload")),
        Duration::from_secs(3),
    );
    let mark = squid.processes();
    drop_and_check(squid, mark);
}

#[tokio::test]
async fn squid_basic_auth() {
    let (user, password) = ("alice", "p@ss:w0rd é");
    let squid = start_or_skip!(Squid::start(SquidOptions {
        basic_auth: Some((user.into(), password.into())),
    }));
    let sink = common::sink(true).await;

    // No credentials, then wrong ones: 407 naming the realm.
    for auth in [None, Some((user, "wrong"))] {
        let (_, res) = bounded(
            "CONNECT without valid credentials",
            http_connect(
                to_kit(squid.port(), || squid.cache_log()).await,
                &authority(&sink),
                auth,
            ),
        )
        .await;
        assert_eq!(res.status, 407, "{}", res.head);
        assert_eq!(
            res.header("proxy-authenticate"),
            Some(format!("Basic realm=\"{SQUID_REALM}\"")),
            "{}",
            res.head
        );
    }
    // The right ones: a tunnel, TLS inside it.
    let (io, res) = bounded(
        "CONNECT with credentials",
        http_connect(
            to_kit(squid.port(), || squid.cache_log()).await,
            &authority(&sink),
            Some((user, password)),
        ),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.head);
    bounded("POST through squid", post_through_tunnel(io, &sink, &[])).await;
    let log = squid.access_log_with(&format!("CONNECT {} {user} ", authority(&sink)), STEP);
    assert!(log.contains("TCP_DENIED/407"), "{log}");

    // Forwarding with credentials: the origin never sees them.
    let plain = common::sink(false).await;
    let mut io = to_kit(squid.port(), || squid.cache_log()).await;
    let proxy_auth = format!(
        "Proxy-Authorization: Basic {}",
        base64(format!("{user}:{password}").as_bytes())
    );
    let res = bounded(
        "forward POST with credentials",
        post(
            &mut io,
            &plain.url("/upload"),
            &authority(&plain),
            &[proxy_auth, "Connection: close".into()],
        ),
    )
    .await;
    let v = assert_verified(&res);
    assert!(v["headers"].get("proxy-authorization").is_none(), "{v}");
    // Squid and its basic_ncsa_auth helper.
    let mark = squid.processes();
    assert!(
        leftovers(&mark)
            .iter()
            .any(|p| p.contains("basic_ncsa_auth")),
        "{:#?}",
        leftovers(&mark)
    );
    drop_and_check(squid, mark);
}

// --- danted ------------------------------------------------------------------------------------

#[tokio::test]
async fn dante_socks5_without_auth() {
    let started = Instant::now();
    let dante = start_or_skip!(Dante::start(DanteOptions::default()));
    eprintln!(
        "{} on {} (ready in {:?})",
        dante.version(),
        dante.url(),
        started.elapsed()
    );
    let sink = common::sink(false).await;
    let port = sink.addr().port();
    // An address, then a name the proxy resolves (socks5h).
    for dest in [
        Dest::Ipv4(Ipv4Addr::LOCALHOST, port),
        Dest::Name("localhost", port),
    ] {
        let io = bounded(
            "SOCKS5",
            socks5(to_kit(dante.port(), || dante.log()).await, dest, None),
        )
        .await
        .expect("danted opens the tunnel");
        bounded("POST through danted", post_through_tunnel(io, &sink, &[])).await;
    }
    let mark = dante.processes();
    drop_and_check(dante, mark);
    eprintln!("dante test took {:?}", started.elapsed());
}

#[tokio::test]
async fn dante_socks5_username_password() {
    let (user, password) = ("bob", "dante:secret");
    let passwd_before = std::fs::read("/etc/passwd").unwrap_or_default();
    let dante = start_or_skip!(Dante::start(DanteOptions {
        username_password: Some((user.into(), password.into())),
    }));
    // The user exists for danted only.
    assert_eq!(
        std::fs::read("/etc/passwd").unwrap_or_default(),
        passwd_before
    );
    let sink = common::sink(true).await;
    let dest = || Dest::Ipv4(Ipv4Addr::LOCALHOST, sink.addr().port());

    let io = bounded(
        "SOCKS5 with credentials",
        socks5(
            to_kit(dante.port(), || dante.log()).await,
            dest(),
            Some((user, password)),
        ),
    )
    .await
    .expect("danted opens the tunnel");
    bounded("POST through danted", post_through_tunnel(io, &sink, &[])).await;

    let wrong = bounded(
        "SOCKS5 with a wrong password",
        socks5(
            to_kit(dante.port(), || dante.log()).await,
            dest(),
            Some((user, "wrong")),
        ),
    )
    .await
    .err();
    assert!(
        matches!(wrong, Some(SocksRefusal::Auth(s)) if s != 0),
        "{wrong:?}\n{}",
        dante.log()
    );
    let unknown = bounded(
        "SOCKS5 as an unknown user",
        socks5(
            to_kit(dante.port(), || dante.log()).await,
            dest(),
            Some(("root", password)),
        ),
    )
    .await
    .err();
    assert!(
        matches!(unknown, Some(SocksRefusal::Auth(s)) if s != 0),
        "{unknown:?}"
    );
    let none = bounded(
        "SOCKS5 offering no auth",
        socks5(to_kit(dante.port(), || dante.log()).await, dest(), None),
    )
    .await
    .err();
    assert_eq!(none, Some(SocksRefusal::NoAcceptableMethod));
    let log = dante.log();
    assert!(log.contains("password authentication failed"), "{log}");

    let mark = dante.processes();
    drop_and_check(dante, mark);
    assert_eq!(
        std::fs::read("/etc/passwd").unwrap_or_default(),
        passwd_before
    );
}

// --- microsocks --------------------------------------------------------------------------------

#[tokio::test]
async fn microsocks_socks5_without_auth() {
    let started = Instant::now();
    let ms = start_or_skip!(Microsocks::start(MicrosocksOptions::default()));
    eprintln!(
        "{} on {} (ready in {:?})",
        ms.version(),
        ms.url(),
        started.elapsed()
    );
    let sink = common::sink(true).await;
    let port = sink.addr().port();
    for dest in [
        Dest::Ipv4(Ipv4Addr::LOCALHOST, port),
        Dest::Name("localhost", port),
    ] {
        let io = bounded(
            "SOCKS5",
            socks5(to_kit(ms.port(), || ms.log()).await, dest, None),
        )
        .await
        .expect("microsocks opens the tunnel");
        bounded(
            "POST through microsocks",
            post_through_tunnel(io, &sink, &[]),
        )
        .await;
    }
    let mark = ms.processes();
    drop_and_check(ms, mark);
}

#[tokio::test]
async fn microsocks_socks5_user_password() {
    let (user, password) = ("carol", "micro secret");
    let ms = start_or_skip!(Microsocks::start(MicrosocksOptions {
        user_password: Some((user.into(), password.into())),
    }));
    let sink = common::sink(false).await;
    let dest = || Dest::Ipv4(Ipv4Addr::LOCALHOST, sink.addr().port());
    let io = bounded(
        "SOCKS5 with credentials",
        socks5(
            to_kit(ms.port(), || ms.log()).await,
            dest(),
            Some((user, password)),
        ),
    )
    .await
    .expect("microsocks opens the tunnel");
    bounded(
        "POST through microsocks",
        post_through_tunnel(io, &sink, &[]),
    )
    .await;
    let wrong = bounded(
        "SOCKS5 with a wrong password",
        socks5(
            to_kit(ms.port(), || ms.log()).await,
            dest(),
            Some((user, "wrong")),
        ),
    )
    .await
    .err();
    assert!(
        matches!(wrong, Some(SocksRefusal::Auth(s)) if s != 0),
        "{wrong:?}"
    );
    let none = bounded(
        "SOCKS5 offering no auth",
        socks5(to_kit(ms.port(), || ms.log()).await, dest(), None),
    )
    .await
    .err();
    assert_eq!(none, Some(SocksRefusal::NoAcceptableMethod));
    let log = ms.log();
    assert!(
        log.contains(&format!("connected to 127.0.0.1:{}", sink.addr().port())),
        "{log}"
    );
    let mark = ms.processes();
    drop_and_check(ms, mark);
}

// --- the scripted proxy's presets --------------------------------------------------------------

/// The proxy saw the connection in order: accepted, first byte, reply begun, reply written.
fn assert_stamps_in_order(log: &crate::scripted_proxy::ConnLog) {
    let first = log.first_byte.expect("first byte stamped");
    let replied = log.replied.expect("reply stamped");
    let written = log.reply_written.expect("reply's write stamped");
    assert!(
        log.accepted <= first && first <= replied && replied <= written,
        "{log:#?}"
    );
}

#[tokio::test]
async fn scripted_http_connect_with_basic_auth() {
    let auth = presets::BasicAuth::new("dave", "pw:1", "scripted realm");
    let proxy = ScriptedProxy::start(vec![presets::http_connect(Some(auth))]).await;
    let sink = common::sink(false).await;

    let (_, res) = bounded(
        "CONNECT with a wrong password",
        http_connect(
            tcp(proxy.addr.port()).await,
            &authority(&sink),
            Some(("dave", "x")),
        ),
    )
    .await;
    assert_eq!(res.status, 407);
    assert_eq!(
        res.header("proxy-authenticate").as_deref(),
        Some("Basic realm=\"scripted realm\"")
    );

    let (io, res) = bounded(
        "CONNECT",
        http_connect(
            tcp(proxy.addr.port()).await,
            &authority(&sink),
            Some(("dave", "pw:1")),
        ),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.head);
    let v = bounded(
        "POST through the tunnel",
        post_through_tunnel(io, &sink, &["Authorization: Bearer origin-only".into()]),
    )
    .await;
    assert_eq!(v["headers"]["authorization"], "Bearer origin-only", "{v}");
    assert!(v["headers"].get("proxy-authorization").is_none(), "{v}");

    let log = proxy.ended_log(1, STEP).await;
    assert_eq!(log.heads.len(), 1);
    assert!(log.header(0, "proxy-authorization").is_some(), "{log:#?}");
    assert!(log.header(0, "authorization").is_none(), "{log:#?}");
    assert_eq!(
        log.target,
        Some(Target {
            host: Host::Ipv4(Ipv4Addr::LOCALHOST),
            port: sink.addr().port()
        })
    );
    let relayed = String::from_utf8_lossy(&log.to_origin);
    assert!(
        relayed.starts_with("POST /upload HTTP/1.1\r\n"),
        "{relayed}"
    );
    assert!(
        relayed.contains("\r\nAuthorization: Bearer origin-only\r\n"),
        "{relayed}"
    );
    assert!(log.bytes_to_client > 0 && log.error.is_none(), "{log:#?}");
    assert_stamps_in_order(&log);
    let refused = proxy.log(0);
    assert!(
        refused.finished && refused.replied.is_some(),
        "{refused:#?}"
    );
}

#[tokio::test]
async fn scripted_http_forward_keeps_alive_and_strips_proxy_headers() {
    let auth = presets::BasicAuth::new("erin", "pw", "fwd");
    let proxy = ScriptedProxy::start(vec![presets::http_forward(Some(auth))]).await;
    let (a, b) = (common::sink(false).await, common::sink(false).await);
    let proxy_auth = format!("Proxy-Authorization: Basic {}", base64(b"erin:pw"));
    let mut io = tcp(proxy.addr.port()).await;
    // Two requests on one connection to the proxy, to two origins, then one more to the first.
    for sink in [&a, &b, &a] {
        let res = bounded(
            "forward POST",
            post(
                &mut io,
                &sink.url("/upload"),
                &authority(sink),
                &[proxy_auth.clone(), "Proxy-Connection: keep-alive".into()],
            ),
        )
        .await;
        let v = assert_verified(&res);
        assert!(v["headers"].get("proxy-authorization").is_none(), "{v}");
        assert!(v["headers"].get("proxy-connection").is_none(), "{v}");
    }
    drop(io);
    let log = proxy.ended_log(0, STEP).await;
    assert_eq!(log.heads.len(), 3, "{log:#?}");
    assert_eq!(log.origin_heads.len(), 3);
    for head in &log.origin_heads {
        assert!(head.starts_with("POST /upload HTTP/1.1\r\n"), "{head}");
        assert!(
            header_value(head, "proxy-authorization").is_none(),
            "{head}"
        );
    }
    assert!(log.error.is_none(), "{log:#?}");
    assert_stamps_in_order(&log);
    assert_eq!(a.stats().requests, 2);
    assert_eq!(b.stats().requests, 1);

    // Without credentials: 407, and the origin sees nothing.
    let mut io = tcp(proxy.addr.port()).await;
    let res = bounded(
        "forward POST without credentials",
        post(&mut io, &a.url("/upload"), &authority(&a), &[]),
    )
    .await;
    assert_eq!(res.status, 407);
    assert_eq!(a.stats().requests, 2);
}

#[tokio::test]
async fn scripted_socks5_presets() {
    let hosts = vec![("origin.test".to_string(), IpAddr::V4(Ipv4Addr::LOCALHOST))];
    let proxy = ScriptedProxy::start_with(
        ProxyOptions {
            hosts,
            ..ProxyOptions::default()
        },
        vec![presets::socks5_no_auth()],
    )
    .await;
    let sink = common::sink(true).await;
    let port = sink.addr().port();
    // A name only the proxy knows (socks5h).
    let io = bounded(
        "SOCKS5",
        socks5(
            tcp(proxy.addr.port()).await,
            Dest::Name("origin.test", port),
            None,
        ),
    )
    .await
    .expect("tunnel");
    bounded("POST", post_through_tunnel(io, &sink, &[])).await;
    let log = proxy.ended_log(0, STEP).await;
    assert_eq!(log.socks_methods, vec![0]);
    assert_eq!(
        log.target,
        Some(Target {
            host: Host::Name("origin.test".into()),
            port
        })
    );
    assert_stamps_in_order(&log);

    let with_auth = ScriptedProxy::start(vec![presets::socks5_user_password("frank", "pw")]).await;
    let dest = || Dest::Ipv4(Ipv4Addr::LOCALHOST, port);
    let wrong = bounded(
        "SOCKS5 wrong password",
        socks5(
            tcp(with_auth.addr.port()).await,
            dest(),
            Some(("frank", "nope")),
        ),
    )
    .await
    .err();
    assert_eq!(wrong, Some(SocksRefusal::Auth(1)));
    let none = bounded(
        "SOCKS5 no auth offered",
        socks5(tcp(with_auth.addr.port()).await, dest(), None),
    )
    .await
    .err();
    assert_eq!(none, Some(SocksRefusal::NoAcceptableMethod));
    let io = bounded(
        "SOCKS5 with credentials",
        socks5(
            tcp(with_auth.addr.port()).await,
            dest(),
            Some(("frank", "pw")),
        ),
    )
    .await
    .expect("tunnel");
    bounded("POST", post_through_tunnel(io, &sink, &[])).await;
    let log = with_auth.ended_log(2, STEP).await;
    assert_eq!(log.socks_auth, Some(("frank".into(), "pw".into())));
    assert_eq!(log.socks_methods, vec![2]);
    assert_stamps_in_order(&log);
    assert_eq!(
        with_auth.log(0).socks_auth,
        Some(("frank".into(), "nope".into()))
    );
}

#[tokio::test]
async fn scripted_socks4a() {
    let proxy = ScriptedProxy::start(vec![presets::socks4a()]).await;
    let sink = common::sink(false).await;
    let io = bounded(
        "SOCKS4a",
        socks4a(
            tcp(proxy.addr.port()).await,
            "localhost",
            sink.addr().port(),
        ),
    )
    .await
    .expect("tunnel");
    bounded("POST", post_through_tunnel(io, &sink, &[])).await;
    let log = proxy.ended_log(0, STEP).await;
    assert_eq!(log.socks_version, Some(4));
    assert_eq!(log.socks4_user.as_deref(), Some("kit-user"));
    assert_eq!(log.target.unwrap().host, Host::Name("localhost".into()));
}

#[tokio::test]
async fn scripted_https_proxy_carries_tls_inside_tls() {
    let proxy = ScriptedProxy::start_with(
        ProxyOptions {
            tls: true,
            ..ProxyOptions::default()
        },
        vec![presets::http_connect(None)],
    )
    .await;
    let sink = common::sink(true).await;
    let to_proxy = tls_over(
        tcp(proxy.addr.port()).await,
        proxy.ca_pem.as_deref().unwrap(),
    )
    .await;
    let (io, res) = bounded(
        "CONNECT over TLS",
        http_connect(to_proxy, &authority(&sink), None),
    )
    .await;
    assert_eq!(res.status, 200);
    bounded("POST, TLS in TLS", post_through_tunnel(io, &sink, &[])).await;
    assert_stamps_in_order(&proxy.ended_log(0, STEP).await);
}

/// On a thread of its own, the proxy's stamps fall where the client saw them happen: the
/// accept between the client's connect and its reading the answer, the first byte after the
/// client began to write, the reply before the client read it.
#[tokio::test]
async fn scripted_proxy_stamps_agree_with_the_client() {
    let proxy = ScriptedProxy::start_with(
        ProxyOptions {
            own_thread: true,
            ..ProxyOptions::default()
        },
        vec![presets::socks5_no_auth()],
    )
    .await;
    let sink = common::sink(false).await;
    let before_connect = Instant::now();
    let mut s = tcp(proxy.addr.port()).await;
    let before_write = Instant::now();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    bounded("greeting", s.read_exact(&mut choice))
        .await
        .unwrap();
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&sink.addr().port().to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    bounded("reply", s.read_exact(&mut reply)).await.unwrap();
    let after_reply = Instant::now();
    assert_eq!(reply[1], 0);
    bounded("POST", post_through_tunnel(s, &sink, &[])).await;
    let log = proxy.ended_log(0, STEP).await;
    assert_stamps_in_order(&log);
    let (accepted, first, replied) = (log.accepted, log.first_byte.unwrap(), log.replied.unwrap());
    assert!(
        before_connect <= accepted && accepted <= after_reply,
        "{log:#?}"
    );
    assert!(before_write <= first, "{log:#?}");
    assert!(replied <= after_reply, "{log:#?}");
    eprintln!(
        "client: connect at +0, reply read at {:?}; proxy: accept {:?}, first byte {:?}, \
         reply {:?} to {:?}",
        after_reply - before_connect,
        accepted - before_connect,
        first - before_connect,
        replied - before_connect,
        log.reply_written.unwrap() - before_connect
    );
}

/// The proxy refuses what is not on this machine, as a proxy's rules would, and connects to
/// nothing: SOCKS5 reply 2, SOCKS4 91, HTTP 403 (CONNECT and forwarding).
#[tokio::test]
async fn scripted_proxy_never_leaves_the_machine() {
    let socks = ScriptedProxy::start(vec![presets::socks5_no_auth()]).await;
    for dest in [
        Dest::Ipv4(Ipv4Addr::new(192, 0, 2, 1), 443),
        Dest::Name("example.com", 443),
    ] {
        let r = bounded(
            "SOCKS5 beyond",
            socks5(tcp(socks.addr.port()).await, dest, None),
        )
        .await
        .err();
        assert_eq!(r, Some(SocksRefusal::Reply(2)));
    }
    let s4 = ScriptedProxy::start(vec![presets::socks4a()]).await;
    let r = bounded(
        "SOCKS4a beyond",
        socks4a(tcp(s4.addr.port()).await, "example.com", 80),
    )
    .await
    .err();
    assert_eq!(r, Some(SocksRefusal::Reply(91)));
    let http = ScriptedProxy::start(vec![presets::http_connect(None)]).await;
    let (_, res) = bounded(
        "CONNECT beyond",
        http_connect(tcp(http.addr.port()).await, "example.com:443", None),
    )
    .await;
    assert_eq!(res.status, 403);
    let fwd = ScriptedProxy::start(vec![presets::http_forward(None)]).await;
    let mut io = tcp(fwd.addr.port()).await;
    let res = bounded(
        "forward beyond",
        post(&mut io, "http://192.0.2.1/upload", "192.0.2.1", &[]),
    )
    .await;
    assert_eq!(res.status, 403);
    for p in [&socks, &s4, &http, &fwd] {
        for log in p.logs() {
            assert!(
                log.connect_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("not allowed")),
                "{log:#?}"
            );
        }
    }
    // A refused port on loopback is "connection refused" (5) / 502.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = bounded(
        "SOCKS5 refused",
        socks5(
            tcp(socks.addr.port()).await,
            Dest::Ipv4(Ipv4Addr::LOCALHOST, closed_port),
            None,
        ),
    )
    .await
    .err();
    assert_eq!(r, Some(SocksRefusal::Reply(5)));
    let (_, res) = bounded(
        "CONNECT refused",
        http_connect(
            tcp(http.addr.port()).await,
            &format!("127.0.0.1:{closed_port}"),
            None,
        ),
    )
    .await;
    assert_eq!(res.status, 502);
}

/// SOCKS5 requests the well-behaved preset does not serve get the reply codes that say so:
/// BIND (7, command not supported) and an unknown address type (8).
#[tokio::test]
async fn scripted_socks5_refuses_what_it_does_not_serve() {
    let proxy = ScriptedProxy::start(vec![presets::socks5_no_auth()]).await;
    for (request, code) in [
        (&[5u8, 2, 0, 1, 127, 0, 0, 1, 0, 80][..], 7u8),
        (&[5, 1, 0, 9][..], 8),
    ] {
        let mut s = tcp(proxy.addr.port()).await;
        s.write_all(&[5, 1, 0]).await.unwrap();
        let mut choice = [0u8; 2];
        bounded("greeting", s.read_exact(&mut choice))
            .await
            .unwrap();
        assert_eq!(choice, [5, 0]);
        s.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        bounded("reply", s.read_to_end(&mut reply)).await.unwrap();
        assert_eq!(reply, [5, code, 0, 1, 0, 0, 0, 0, 0, 0], "{request:?}");
    }
    assert_eq!(proxy.log(0).socks_command, Some(2));
    assert!(proxy
        .logs()
        .iter()
        .all(|l| l.finished && l.bytes_to_origin == 0));
}

/// The hostile acts do what they say: garbage then close, reset, a silent proxy, a SOCKS reply
/// code of the test's choosing.
#[tokio::test]
async fn scripted_hostile_acts() {
    let proxy = ScriptedProxy::start(vec![
        vec![
            Act::ReadConnectHead,
            Act::Reply(b"garbage\r\n".to_vec()),
            Act::Close,
        ],
        vec![Act::ReadConnectHead, Act::Reset],
        vec![Act::Hold],
        vec![
            Act::ReadSocksGreeting,
            Act::WriteSocksMethod(0),
            Act::ReadSocksRequest,
            Act::Sleep(Duration::from_millis(20)),
            Act::WriteSocksReply(6),
            Act::Close,
        ],
    ])
    .await;
    let port = proxy.addr.port();
    let connect = b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n";

    let mut s = tcp(port).await;
    s.write_all(connect).await.unwrap();
    let mut got = Vec::new();
    bounded("garbage then EOF", s.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"garbage\r\n");

    let mut s = tcp(port).await;
    s.write_all(connect).await.unwrap();
    let err = bounded("reset", s.read_to_end(&mut got)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);

    let mut s = tcp(port).await;
    s.write_all(connect).await.unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(200), s.read(&mut [0u8; 1])).await;
    assert!(silent.is_err(), "Hold answered: {silent:?}");
    drop(s);
    let held = proxy.ended_log(2, STEP).await;
    assert!(held.finished && held.replied.is_none(), "{held:#?}");

    let r = bounded(
        "SOCKS5 TTL expired",
        socks5(tcp(port).await, Dest::Ipv4(Ipv4Addr::LOCALHOST, 9), None),
    )
    .await
    .err();
    assert_eq!(r, Some(SocksRefusal::Reply(6)));
    let log = proxy.ended_log(3, STEP).await;
    let names: Vec<&str> = log.events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ReadSocksGreeting",
            "WriteSocksMethod",
            "ReadSocksRequest",
            "Sleep",
            "WriteSocksReply",
            "Close"
        ]
    );
    let (sleep_done, replied) = (log.events[3].1, log.replied.unwrap());
    assert!(replied >= sleep_done, "{log:#?}");
    assert!(replied.duration_since(log.first_byte.unwrap()) >= Duration::from_millis(20));
}

// --- the kits' own helpers ---------------------------------------------------------------------

/// SHA-256-crypt against the specification's own example and libxcrypt's `crypt` through
/// `openssl passwd -5` where it is installed.
#[test]
fn sha256_crypt_matches_the_specification() {
    assert_eq!(
        sha256_crypt(b"Hello world!", "saltstring"),
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
    );
    // Longer than 32 bytes, and a 16-character salt.
    let password = "a password longer than thirty-two bytes, p@ss:wörd";
    let mine = sha256_crypt(password.as_bytes(), "abcdefghijklmnop");
    match std::process::Command::new("openssl")
        .args(["passwd", "-5", "-salt", "abcdefghijklmnop", password])
        .output()
    {
        Ok(out) if out.status.success() => {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), mine);
        }
        _ => eprintln!("openssl not installed: only the specification's example was checked"),
    }
}

#[test]
fn base64_is_standard() {
    for (input, expected) in [
        (&b""[..], ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
    ] {
        assert_eq!(base64(input), expected);
    }
}
