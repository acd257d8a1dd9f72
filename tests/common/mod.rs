//! Shared helpers for the integration tests: sinks, clients and files.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uploadfile::{Client, UploadSuccess};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

pub mod alone;
pub mod certs;
pub mod hostile;

/// A sink with the default config, plain or TLS.
pub async fn sink(tls: bool) -> SinkHandle {
    Sink::start(SinkConfig {
        tls,
        ..SinkConfig::default()
    })
    .await
    .expect("sink starts")
}

/// A client that trusts the sink's CA (if any).
pub fn client_for(sink: &SinkHandle) -> Client {
    let mut b = Client::builder().no_proxy();
    if let Some(pem) = sink.ca_pem() {
        b = b.add_root_certificates_pem(pem.as_bytes());
    }
    b.build().expect("client builds")
}

/// A file of `len` deterministic pseudo-random bytes named `name` in `dir`.
pub fn make_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut left = len;
    while left > 0 {
        buf.clear();
        let n = left.min(64 * 1024);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        f.write_all(&buf).unwrap();
        left -= n;
    }
    path
}

pub fn sha256_file(path: &Path) -> String {
    let data = std::fs::read(path).unwrap();
    hex::encode(Sha256::digest(&data))
}

/// The sink's JSON verdict of a successful upload.
pub fn verdict(res: &UploadSuccess) -> Value {
    serde_json::from_str(&res.data)
        .unwrap_or_else(|e| panic!("sink answered non-JSON ({e}): {}", res.data))
}

/// Assert the order `docs/profile.md` promises for a fresh connection (every phase present and
/// non-decreasing, from `fetchStart` to `responseEnd`).
pub fn assert_phases_in_order(p: &uploadfile::Profile) {
    let order = [
        p.invoke_start,
        p.queue_start,
        p.queue_end,
        p.fetch_start,
        p.domain_look_up_start,
        p.domain_look_up_end,
        p.connect_start,
        p.ssl_connection_start,
        p.ssl_connection_end,
        p.connect_end,
        p.request_start,
        p.request_end,
        p.response_start,
        p.response_end,
    ];
    assert!(
        order.iter().all(|t| *t > 0.0),
        "a phase is missing: {order:?}"
    );
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {order:?}"
    );
}

/// The field values the sink parsed, in order.
pub fn fields(v: &Value) -> Vec<(String, String)> {
    v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Read one request (head + Content-Length body) from `s`; returns the head text, or None at EOF.
pub async fn read_request(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    send_continue: bool,
) -> Option<String> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if send_continue && head.to_ascii_lowercase().contains("expect: 100-continue") {
                s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.ok()?;
            }
            while buf.len() < len {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..len);
            return Some(head);
        }
        let mut chunk = vec![0u8; 64 * 1024];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A server that answers every connection's requests with `responses` in turn, then closes.
pub async fn serve(
    responses: Vec<&'static [u8]>,
    send_continue: bool,
) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut heads = Vec::new();
        for r in responses {
            let Some(head) = read_request(&mut s, &mut buf, send_continue).await else {
                break;
            };
            heads.push(head);
            s.write_all(r).await.unwrap();
        }
        heads
    });
    (url, task)
}
