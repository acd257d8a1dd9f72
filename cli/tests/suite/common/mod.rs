//! What the CLI's process tests share: a sink on its own runtime, the binary under test with a
//! timeout, and test files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use sha2::{Digest, Sha256};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

/// A sink running on its own runtime for the duration of a test.
pub struct TestSink {
    handle: Option<SinkHandle>,
    runtime: tokio::runtime::Runtime,
}

impl TestSink {
    /// The default sink, plain or TLS (HTTP/1.1 and h2 by ALPN).
    pub fn start(tls: bool) -> TestSink {
        TestSink::with(SinkConfig {
            tls,
            ..SinkConfig::default()
        })
    }

    /// A TLS sink that also serves HTTP/3 (QUIC) on its port.
    pub fn h3() -> TestSink {
        TestSink::with(SinkConfig {
            tls: true,
            h3: true,
            ..SinkConfig::default()
        })
    }

    /// A sink with this configuration.
    pub fn with(config: SinkConfig) -> TestSink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = runtime.block_on(Sink::start(config)).expect("start sink");
        TestSink {
            handle: Some(handle),
            runtime,
        }
    }

    pub fn sink(&self) -> &SinkHandle {
        self.handle.as_ref().expect("running")
    }

    /// The upload URL, `/upload`.
    pub fn url(&self) -> String {
        self.sink().url("/upload")
    }

    /// The sink's CA written to `ca.pem` in `dir`, for `--cacert`.
    pub fn ca_file(&self, dir: &Path) -> PathBuf {
        let ca = dir.join("ca.pem");
        self.sink().write_ca_pem(&ca).expect("a TLS sink has a CA");
        ca
    }

    /// A URL for `path` (which may carry a query).
    pub fn url_at(&self, path: &str) -> String {
        self.sink().url(path)
    }
}

impl Drop for TestSink {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.runtime.block_on(h.shutdown());
        }
    }
}

/// The proxy variables of the environment (curl's names, both cases).
pub const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// The `uploadfile` binary, stopped after 60 s at most, without the proxy variables of the
/// environment the tests run in (the tests talk to their own local sinks; `proxy_env` sets the
/// variables it tests).
pub fn uploadfile() -> Command {
    let mut cmd = cargo_bin_cmd!("uploadfile");
    cmd.timeout(Duration::from_secs(60));
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// A file of `size` bytes with varied content named `name` in `dir`, and its sha256.
pub fn test_file(dir: &Path, name: &str, size: usize) -> (PathBuf, String) {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, hex::encode(Sha256::digest(&data)))
}

/// Every field name of the original's `profile` (the seed's table, in its order).
pub const PROFILE_FIELDS: [&str; 31] = [
    "invokeStart",
    "httpDNSDomainLookUpStart",
    "httpDNSDomainLookUpEnd",
    "queueStart",
    "queueEnd",
    "redirectStart",
    "redirectEnd",
    "fetchStart",
    "domainLookUpStart",
    "domainLookUpEnd",
    "connectStart",
    "connectEnd",
    "SSLconnectionStart",
    "SSLconnectionEnd",
    "requestStart",
    "requestEnd",
    "responseStart",
    "responseEnd",
    "rtt",
    "estimate_nettype",
    "httpRttEstimate",
    "transportRttEstimate",
    "downstreamThroughputKbpsEstimate",
    "throughputKbps",
    "peerIP",
    "port",
    "socketReused",
    "sendBytesCount",
    "receivedBytedCount",
    "protocol",
    "usingHighPerformanceMode",
];
