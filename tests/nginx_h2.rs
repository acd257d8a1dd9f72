//! Interop with a real HTTP/2 server: Debian's nginx (installed by `.ci/run`), TLS + h2 on
//! 127.0.0.1, proxying `/upload` to the in-process sink, which verifies each upload; its verdict
//! comes back through nginx. Each test runs its own nginx (see `common/nginx.rs`) and skips, saying
//! why, where nginx cannot be had.

mod common;
#[path = "common/nginx.rs"]
mod nginx;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use nginx::Nginx;
use sha2::{Digest, Sha256};
use uploadfile::{Client, UploadOptions, UploadSuccess};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

/// The sink (plain HTTP on 127.0.0.1) and an nginx in front of it, or `None` (skipped).
async fn sink_behind_nginx() -> Option<(SinkHandle, Nginx)> {
    let sink = Sink::start(SinkConfig::default())
        .await
        .expect("sink starts");
    match Nginx::start(sink.addr()) {
        Ok(nginx) => {
            eprintln!("{} on 127.0.0.1:{}", nginx.version(), nginx.port());
            Some((sink, nginx))
        }
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

fn client_trusting(nginx: &Nginx) -> Client {
    Client::builder()
        .no_proxy()
        .add_root_certificates_pem(nginx.cert_pem())
        .build()
        .expect("client builds")
}

fn h2_options(url: String, file: &Path) -> UploadOptions {
    UploadOptions::new(url, file, "file")
        .form_data("user", "test")
        .enable_http2(true)
}

/// The answer came from nginx (its `Server` header), and nginx saw `protocol` from us.
fn assert_through_nginx(res: &UploadSuccess, nginx_protocol: &str, nginx: &Nginx) {
    assert_eq!(res.status_code, 200, "{}", res.data);
    let server = res.header.get("server").unwrap_or_default();
    assert!(server.starts_with("nginx"), "Server: {server:?}");
    let v = verdict(res);
    assert_eq!(
        v["headers"]["x-client-protocol"],
        nginx_protocol,
        "what nginx saw; its log:\n{}",
        nginx.error_log()
    );
    // nginx -> sink is HTTP/1.1 (proxy_http_version 1.1).
    assert_eq!(v["protocol"], "HTTP/1.1");
    // The byte counters add up against a server that is not ours.
    let (p, e) = (
        res.profile.as_ref().unwrap(),
        res.profile_extensions.as_ref().unwrap(),
    );
    assert_eq!(
        e.request_header_bytes_sent + e.body_bytes_sent + e.request_framing_bytes,
        p.send_bytes_count,
        "{e:?}"
    );
    assert_eq!(
        e.response_header_bytes_received
            + e.response_body_bytes_received
            + e.response_framing_bytes,
        p.received_byted_count,
        "{e:?}"
    );
    assert_eq!(e.response_body_bytes_received, res.data.len() as u64);
}

/// SHA-256 of a file, read in 1 MiB pieces.
fn sha256_chunked(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_over_h2_through_nginx_is_verified() {
    let Some((_sink, nginx)) = sink_behind_nginx().await else {
        return;
    };
    eprintln!("{}", nginx.config_text());
    let client = client_trusting(&nginx);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "photo.png", 1024 * 1024);
    let res = client
        .upload_file(h2_options(nginx.url("/upload"), &file))
        .await
        .unwrap_or_else(|e| panic!("{}; nginx log:\n{}", e.err_msg(), nginx.error_log()));
    assert_through_nginx(&res, "HTTP/2.0", &nginx);
    let v = verdict(&res);
    assert_eq!(fields(&v), vec![("user".into(), "test".into())]);
    assert_eq!(v["files"][0]["field"], "file");
    assert_eq!(v["files"][0]["filename"], "photo.png");
    assert_eq!(v["files"][0]["size"], 1024 * 1024);
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    let p = res.profile.unwrap();
    assert_eq!(p.protocol, "h2");
    assert!(!p.socket_reused);
    assert!(p.ssl_connection_start > 0.0);
    let order = [
        p.request_start,
        p.request_end,
        p.response_start,
        p.response_end,
    ];
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    assert_eq!(res.profile_extensions.unwrap().alpn, "h2");
    eprintln!(
        "1 MiB over h2 via nginx: TLS {:.2} ms, request {:.2} ms, wait {:.2} ms",
        p.ssl_connection_end - p.ssl_connection_start,
        p.request_end - p.request_start,
        p.response_start - p.request_end
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_uploads_share_one_h2_connection_to_nginx() {
    let Some((sink, nginx)) = sink_behind_nginx().await else {
        return;
    };
    let client = client_trusting(&nginx);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..32)
        .map(|i| make_file(dir.path(), &format!("f{i}.bin"), 50_000 + i * 1001))
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| client.upload_file(h2_options(nginx.url("/upload"), f).form_data("index", i)))
        .collect();
    let mut reused = 0;
    for (i, (task, file)) in tasks.into_iter().zip(&files).enumerate() {
        let res = task.await.unwrap_or_else(|e| {
            panic!(
                "upload {i}: {}; nginx log:\n{}",
                e.err_msg(),
                nginx.error_log()
            )
        });
        assert_through_nginx(&res, "HTTP/2.0", &nginx);
        let v = verdict(&res);
        assert_eq!(
            fields(&v),
            vec![
                ("user".into(), "test".into()),
                ("index".into(), i.to_string())
            ]
        );
        assert_eq!(
            v["files"][0]["sha256"].as_str().unwrap(),
            sha256_file(file),
            "upload {i}"
        );
        let p = res.profile.unwrap();
        assert_eq!(p.protocol, "h2", "upload {i}");
        reused += p.socket_reused as usize;
    }
    eprintln!(
        "32 concurrent uploads over h2 via nginx: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(
        reused, 31,
        "every stream but the first rode the existing connection"
    );
    assert_eq!(client.http2_connections(), 1);
    // Every upload reached the sink (nginx opens one upstream connection per request).
    assert_eq!(sink.stats().requests, 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_body_over_h2_through_nginx_is_verified() {
    const LEN: u64 = 256 * 1024 * 1024;
    let Some((_sink, nginx)) = sink_behind_nginx().await else {
        return;
    };
    let client = client_trusting(&nginx);
    let dir = tempfile::tempdir().unwrap();
    // Sparse (zeros, little disk), with the offset written every 64 KiB so that a piece sent
    // twice, lost or out of order changes the hash.
    let path = dir.path().join("large.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(LEN).unwrap();
    for off in (0..LEN).step_by(64 * 1024) {
        f.write_at(format!("offset {off:012}\n").as_bytes(), off)
            .unwrap();
    }
    drop(f);
    let expected = sha256_chunked(&path);

    let started = Instant::now();
    let res = client
        .upload_file(h2_options(nginx.url("/upload"), &path).timeout(Duration::from_secs(300)))
        .await
        .unwrap_or_else(|e| panic!("{}; nginx log:\n{}", e.err_msg(), nginx.error_log()));
    let took = started.elapsed();
    assert_through_nginx(&res, "HTTP/2.0", &nginx);
    let v = verdict(&res);
    assert_eq!(v["files"][0]["size"], LEN);
    assert_eq!(v["files"][0]["sha256"].as_str().unwrap(), expected);
    let p = res.profile.unwrap();
    assert_eq!(p.protocol, "h2");
    let ext = res.profile_extensions.unwrap();
    assert_eq!(ext.body_bytes_sent, v["receivedBytes"].as_u64().unwrap());
    // proxy_request_buffering off: nginx streamed the body instead of spooling it to disk.
    let log = nginx.error_log();
    assert!(
        !log.contains("buffered to a temporary file"),
        "nginx spooled the body:\n{log}"
    );
    eprintln!(
        "256 MiB over h2 via nginx: {:.2} s ({:.1} MiB/s); request {:.0} ms, wait {:.1} ms",
        took.as_secs_f64(),
        LEN as f64 / (1024.0 * 1024.0) / took.as_secs_f64(),
        p.request_end - p.request_start,
        p.response_start - p.request_end
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enable_http2_alpn_falls_back_to_http1() {
    let Some((_sink, nginx)) = sink_behind_nginx().await else {
        return;
    };
    let client = client_trusting(&nginx);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "photo.png", 1024 * 1024);
    let res = client
        .upload_file(h2_options(nginx.url("/upload"), &file).enable_http2(false))
        .await
        .unwrap_or_else(|e| panic!("{}; nginx log:\n{}", e.err_msg(), nginx.error_log()));
    assert_through_nginx(&res, "HTTP/1.1", &nginx);
    let v = verdict(&res);
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    let p = res.profile.unwrap();
    assert_eq!(p.protocol, "http1.1");
    assert_eq!(res.profile_extensions.unwrap().alpn, "http/1.1");
    assert_eq!(client.http2_connections(), 0);
    // The same client, asked for h2 on the same URL, gets it (a new connection).
    let res = client
        .upload_file(h2_options(nginx.url("/upload"), &file))
        .await
        .unwrap();
    assert_through_nginx(&res, "HTTP/2.0", &nginx);
    assert_eq!(res.profile.unwrap().protocol, "h2");
    assert_eq!(client.http2_connections(), 1);
}
