//! Shared helpers for the integration tests: sinks, clients and files.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use uploadfile::{Client, UploadSuccess};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

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
    let mut b = Client::builder();
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
