//! The limit: the simplest sender of the same upload, for the side-by-side bench.
//!
//! One blocking socket (`TCP_NODELAY`), one HTTP/1.1 `POST` per upload with `Content-Length`
//! and the same `multipart/form-data` body as the clients (a fixed boundary, one part with the
//! file), sequential uploads on the same keep-alive connection. No `Expect: 100-continue`.
//!
//! - `http://`: the request head and the part's preamble in one `write`, the file with
//!   `sendfile(2)` (the kernel copies from the page cache; no user-space copy), the epilogue in
//!   one `write`;
//! - `https://`: rustls (ring, as ours) with `set_buffer_limit(None)`, the head and preamble,
//!   then the file in 1 MiB `read` + `write_all`s, then the epilogue.
//!
//! Then it reads the answer (head and a `Content-Length` body) and checks that the sink received
//! exactly the body it sent. No HTTP/2 and no concurrency: those exit with status 2.
//! Arguments: see the crate docs.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use uploadfile_bench_peers::{check_answer, finish, Args};

const MIB: usize = 1024 * 1024;
const BOUNDARY: &str = "----uploadfile-bench-raw-0123456789abcdef";

fn main() -> ExitCode {
    let args = Args::from_env_without_quic();
    if args.http2 || args.concurrency > 1 {
        eprintln!("peer-raw: HTTP/1.1 only, one upload at a time (no --http2, --concurrency 1)");
        return ExitCode::from(2);
    }
    let result = run(&args).map(|(received, elapsed)| (received, "HTTP/1.1", elapsed));
    finish("raw", &args, result)
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url}: http:// or https:// only"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url}"))?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    Ok(Target {
        tls,
        host: host.trim_matches(['[', ']']).to_string(),
        port,
        path: path.to_string(),
    })
}

fn run(args: &Args) -> Result<(u64, f64), String> {
    let target = parse_url(&args.url)?;
    let file_len = args.file_len()?;
    let file_name = args
        .file
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().into_owned());
    let preamble = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        args.field
    );
    let epilogue = format!("\r\n--{BOUNDARY}--\r\n");
    let body_len = preamble.len() as u64 + file_len + epilogue.len() as u64;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {body_len}\r\n\r\n{preamble}",
        target.path, target.host, target.port
    );
    let start = Instant::now();
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {}: {e}", target.host))?
        .next()
        .ok_or("no address")?;
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut received = 0u64;
    let io = |e: io::Error| e.to_string();
    if target.tls {
        let config = tls_config(args)?;
        let name = ServerName::try_from(target.host.clone()).map_err(|e| e.to_string())?;
        let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        // Take each 1 MiB write whole (rustls would otherwise buffer 64 KiB at a time).
        conn.set_buffer_limit(None);
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = vec![0u8; MIB];
        for _ in 0..args.count {
            tls.write_all(head.as_bytes()).map_err(io)?;
            let mut f = File::open(&args.file).map_err(io)?;
            loop {
                let n = f.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                tls.write_all(&buf[..n]).map_err(io)?;
            }
            tls.write_all(epilogue.as_bytes()).map_err(io)?;
            tls.flush().map_err(io)?;
            let (status, body) = read_response(&mut tls)?;
            received += check_answer(status, &body, file_len, Some(body_len))?;
        }
    } else {
        let mut tcp = tcp;
        for _ in 0..args.count {
            tcp.write_all(head.as_bytes()).map_err(io)?;
            let f = File::open(&args.file).map_err(io)?;
            send_file(&tcp, &f, file_len)?;
            tcp.write_all(epilogue.as_bytes()).map_err(io)?;
            let (status, body) = read_response(&mut tcp)?;
            received += check_answer(status, &body, file_len, Some(body_len))?;
        }
    }
    Ok((received, start.elapsed().as_secs_f64()))
}

/// `sendfile(2)` until `len` bytes of `file` are on the socket.
fn send_file(tcp: &TcpStream, file: &File, len: u64) -> Result<(), String> {
    let mut offset: libc::off_t = 0;
    while (offset as u64) < len {
        let want = (len - offset as u64).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the whole call; `offset` is a valid local the
        // kernel advances by the bytes sent.
        let n = unsafe { libc::sendfile(tcp.as_raw_fd(), file.as_raw_fd(), &mut offset, want) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("sendfile: {e}"));
        }
        if n == 0 {
            return Err(format!(
                "sendfile: the file ended at {offset} of {len} bytes"
            ));
        }
    }
    Ok(())
}

fn tls_config(args: &Args) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &args.cacert {
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca:?}: {e}"))? {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reads one HTTP/1.1 response with a `Content-Length` body (skipping any 1xx): status, body.
fn read_response(r: &mut impl Read) -> Result<(u16, String), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line in {head:?}"))?;
            if (100..200).contains(&status) {
                buf.drain(..end + 4);
                continue;
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or("no Content-Length in the answer")?;
            let body_start = end + 4;
            while buf.len() < body_start + len {
                let n = r.read(&mut chunk).map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the answer was cut short".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            if buf.len() > body_start + len {
                return Err("bytes after the answer".into());
            }
            let body = String::from_utf8_lossy(&buf[body_start..]).to_string();
            return Ok((status, body));
        }
        let n = r.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before the answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
