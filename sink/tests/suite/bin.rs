//! The `uploadfile-sink` binary: ready line, one record line per request
//! (wall-clock times), exit on stdin EOF and on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use uploadfile_sink::now_ms;

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uploadfile-sink"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn uploadfile-sink");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines,
        }
    }

    fn raw_line(&self) -> String {
        self.lines.recv_timeout(WAIT).expect("a line in time")
    }

    fn line(&self) -> Value {
        let line = self.raw_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Waits for the process to end by itself.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the sink did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one response with a Content-Length; returns status and body.
fn read_response_sync(r: &mut impl Read) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        r.read_exact(&mut byte).unwrap();
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (head[9..12].parse().unwrap(), body)
}

#[test]
fn plain_ready_line_record_line_and_stdin_eof() {
    let mut p = Proc::start(&["--listen", "127.0.0.1:0"]);
    let line = p.raw_line();
    assert!(line.starts_with(r#"{"url":"http://127.0.0.1:"#), "{line}");
    assert!(line.ends_with(r#","caPem":null}"#), "{line}");
    let ready: Value = serde_json::from_str(&line).unwrap();
    let addr = ready["addr"].as_str().unwrap().to_string();
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(ready["url"], format!("http://127.0.0.1:{port}/"));
    assert_eq!(ready["caPem"], Value::Null);
    assert_eq!(ready.as_object().unwrap().len(), 3);

    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let body = data(100_000);
    let mut req = head("POST", "/upload?x=1", &[], Some(body.len()));
    req.extend_from_slice(&body);
    let w0 = now_ms();
    conn.write_all(&req[..1]).unwrap();
    let w1 = now_ms();
    std::thread::sleep(Duration::from_millis(30));
    conn.write_all(&req[1..]).unwrap();
    let (status, answer) = read_response_sync(&mut conn);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["receivedBytes"], 100_000);

    let r = p.line();
    assert_eq!(r["path"], "/upload");
    assert_eq!(r["query"], "x=1");
    assert_eq!(r["status"], 200);
    assert_eq!(r["receivedBytes"], 100_000);
    assert_eq!(
        (r["connectionId"].as_u64(), r["requestIndex"].as_u64()),
        (Some(1), Some(1))
    );
    let ms = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    // CLOCK_REALTIME in both processes: the sink read the first byte right
    // after this process wrote it.
    let first = ms("firstByteMs");
    assert!(
        first >= w0 - 1.0 && first <= w1 + 20.0,
        "{first} vs {w0}..{w1}"
    );
    assert!(ms("acceptedMs") <= first);
    assert!(ms("headParsedMs") >= first + 25.0);
    let order = [
        "firstByteMs",
        "bodyEndMs",
        "responseHeadWrittenMs",
        "responseEndWrittenMs",
    ];
    assert!(order.windows(2).all(|w| ms(w[0]) <= ms(w[1])), "{r}");
    assert_eq!(r["tlsDoneMs"], Value::Null);
    assert!(r.get("bodyReceivedMs").is_some() && r.get("responseSentMs").is_some());

    // A second request: a second line.
    conn.write_all(&head("GET", "/2", &[], None)).unwrap();
    assert_eq!(read_response_sync(&mut conn).0, 200);
    assert_eq!(p.line()["requestIndex"], 2);

    // stdin EOF: the sink exits, successfully, and stops listening.
    drop(p.stdin.take());
    assert!(p.wait_exit().success());
    assert!(TcpStream::connect(&addr).is_err());
}

#[test]
fn tls_with_ca_out_discard_and_sigterm() {
    let ca_out =
        std::env::temp_dir().join(format!("uploadfile-sink-bin-{}.pem", std::process::id()));
    let ca_arg = ca_out.display().to_string();
    let mut p = Proc::start(&[
        "--tls",
        "--discard",
        "--ca-out",
        &ca_arg,
        "--listen=127.0.0.1:0",
    ]);
    let ready = p.line();
    assert_eq!(ready["caPem"], ca_arg.as_str());
    let addr = ready["addr"].as_str().unwrap().to_string();
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(ready["url"], format!("https://localhost:{port}/"));
    let pem = std::fs::read_to_string(&ca_out).unwrap();
    std::fs::remove_file(&ca_out).unwrap();

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut stream = StreamOwned::new(tls, tcp);
    let mut req = head("POST", "/", &[], Some(4096));
    req.extend_from_slice(&data(4096));
    stream.write_all(&req).unwrap();
    let (status, answer) = read_response_sync(&mut stream);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&answer).unwrap(),
        serde_json::json!({ "receivedBytes": 4096 })
    );
    let r = p.line();
    assert_eq!(r["receivedBytes"], 4096);
    assert!(r["tlsDoneMs"].as_f64().unwrap() >= r["acceptedMs"].as_f64().unwrap());
    assert!(r["bodyEndMs"].as_f64().is_some());

    // SIGTERM: exits successfully (stdin still open).
    let killed = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(p.wait_exit().success());
}

#[test]
fn h3_ready_line_names_the_udp_address() {
    let p = Proc::start(&["--tls", "--h3"]);
    let ready = p.line();
    let addr = ready["addr"].as_str().unwrap();
    assert_eq!(ready["h3Addr"], addr, "{ready}");
    assert_eq!(ready.as_object().unwrap().len(), 4);
    // The UDP twin of the TCP port is the sink's.
    let taken = std::net::UdpSocket::bind(addr).unwrap_err();
    assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
    if let Some(pem) = ready["caPem"].as_str() {
        let _ = std::fs::remove_file(pem);
    }
}

#[test]
fn bad_arguments_exit_2() {
    let bin = env!("CARGO_BIN_EXE_uploadfile-sink");
    for args in [
        &["--bogus"][..],
        &["--listen", "nowhere"],
        &["--ca-out", "x.pem"],
        &["--h3"],
    ] {
        let out = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
}
