//! `enableHttp2`: uploads as HTTP/2 streams, against the sink's hyper h2 server.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use uploadfile::{Client, ErrorKind, UploadOptions};

fn h2_options(url: String, file: &std::path::Path) -> UploadOptions {
    UploadOptions::new(url, file, "file")
        .form_data("user", "test")
        .enable_http2(true)
}

fn h2c_client() -> Client {
    Client::builder()
        .no_proxy()
        .http2_prior_knowledge(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_alpn_negotiates_h2_and_the_sink_verifies_the_upload() {
    let sink = sink(true).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "photo.png", 3 * 1024 * 1024 + 5);
    let task = client.upload_file(h2_options(sink.url("/upload"), &file));
    let progress = Arc::new(Mutex::new(Vec::new()));
    let p2 = progress.clone();
    task.on_progress_update(move |p| p2.lock().unwrap().push(*p));
    let headers = Arc::new(Mutex::new(None));
    let h2 = headers.clone();
    task.on_headers_received(move |h| *h2.lock().unwrap() = Some(h.status_code));
    let res = task.await.unwrap();
    let v = verdict(&res);
    assert_eq!(v["protocol"], "HTTP/2.0");
    assert_eq!(fields(&v), vec![("user".into(), "test".into())]);
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    let p = res.profile.unwrap();
    assert_eq!(p.protocol, "h2");
    assert!(!p.socket_reused);
    assert!(p.ssl_connection_start > 0.0);
    let order = [
        p.fetch_start,
        p.connect_start,
        p.ssl_connection_start,
        p.ssl_connection_end,
        p.connect_end,
        p.request_start,
        p.request_end,
        p.response_start,
        p.response_end,
    ];
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    // Frame-level byte counts: at least the body plus 9-byte DATA frame headers.
    let body = v["receivedBytes"].as_u64().unwrap();
    assert!(
        p.send_bytes_count > body + 9,
        "{} vs body {body}",
        p.send_bytes_count
    );
    assert!(p.received_byted_count as usize > res.data.len());
    assert!(p.rtt > 0.0);
    let ext = res.profile_extensions.unwrap();
    assert_eq!(ext.alpn, "h2");
    assert_eq!(ext.body_bytes_sent, body);
    assert_eq!(*headers.lock().unwrap(), Some(200));
    let events = progress.lock().unwrap();
    assert!(events
        .windows(2)
        .all(|w| w[0].total_bytes_sent < w[1].total_bytes_sent));
    assert_eq!(events.last().unwrap().progress, 100);
}

#[tokio::test]
async fn prior_knowledge_h2c_over_plain_http() {
    let sink = sink(false).await;
    let client = h2c_client();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 200_000);
    let res = client
        .upload_file(h2_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    let v = verdict(&res);
    assert_eq!(v["protocol"], "HTTP/2.0");
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    assert_eq!(res.profile.unwrap().protocol, "h2");
    // Without prior knowledge, plain http stays HTTP/1.1.
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(h2_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    assert_eq!(res.profile.unwrap().protocol, "http1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_uploads_share_one_connection() {
    let sink = sink(true).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..32)
        .map(|i| make_file(dir.path(), &format!("f{i}.bin"), 20_000 + i * 1000))
        .collect();
    let tasks: Vec<_> = files
        .iter()
        .map(|f| client.upload_file(h2_options(sink.url("/upload"), f)))
        .collect();
    let mut connections = std::collections::HashSet::new();
    let mut reused = 0;
    for (task, file) in tasks.into_iter().zip(&files) {
        let res = task.await.unwrap();
        let v = verdict(&res);
        assert_eq!(v["files"][0]["sha256"].as_str().unwrap(), sha256_file(file));
        connections.insert(v["connection"]["id"].as_u64().unwrap());
        let p = res.profile.unwrap();
        assert_eq!(p.protocol, "h2");
        reused += p.socket_reused as usize;
    }
    assert_eq!(connections.len(), 1, "the sink saw {connections:?}");
    assert_eq!(sink.stats().connections_accepted, 1);
    assert_eq!(
        reused, 31,
        "every stream but the first rode an existing connection"
    );
    assert_eq!(client.http2_connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_one_stream_leaves_the_others_alone() {
    let sink = sink(true).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let small = make_file(dir.path(), "small.bin", 1000);
    // Open the connection.
    client
        .upload_file(h2_options(sink.url("/upload"), &small))
        .await
        .unwrap();
    let big = make_file(dir.path(), "big.bin", 8 * 1024 * 1024);
    let slow = client.upload_file(h2_options(sink.url("/upload?delay_ms=3000"), &big));
    let other = client.upload_file(h2_options(sink.url("/upload?delay_ms=300"), &small));
    tokio::time::sleep(Duration::from_millis(100)).await;
    slow.abort();
    let err = slow.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Abort);
    let res = other.await.expect("the other stream is untouched");
    assert_eq!(verdict(&res)["files"][0]["size"], 1000);
    // And the connection still carries new streams.
    let res = client
        .upload_file(h2_options(sink.url("/upload"), &small))
        .await
        .unwrap();
    assert!(res.profile.unwrap().socket_reused);
    assert_eq!(sink.stats().connections_accepted, 1);
}

#[tokio::test]
async fn an_early_413_over_h2_is_a_success() {
    let sink = sink(true).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", 16 * 1024 * 1024);
    let res = client
        .upload_file(h2_options(sink.url("/upload?early=1&status=413"), &file))
        .await
        .expect("an early answer over h2 is the result");
    assert_eq!(res.status_code, 413);
    assert!(res.profile_extensions.unwrap().early_response);
}

#[tokio::test]
async fn timeout_over_h2() {
    let sink = sink(true).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    let err = client
        .upload_file(
            h2_options(sink.url("/upload?delay_ms=3000"), &file)
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.err_msg(), "uploadFile:fail timeout");
}

#[tokio::test]
async fn a_server_that_declines_h2_gets_http11_on_the_same_connection() {
    let sink = uploadfile_sink::Sink::start(uploadfile_sink::SinkConfig {
        tls: true,
        offer_h2: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100_000);
    for _ in 0..2 {
        let res = client
            .upload_file(h2_options(sink.url("/upload"), &file))
            .await
            .unwrap();
        let v = verdict(&res);
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(
            v["files"][0]["sha256"].as_str().unwrap(),
            sha256_file(&file)
        );
        assert_eq!(res.profile.unwrap().protocol, "http1.1");
    }
    assert_eq!(
        sink.stats().connections_accepted,
        1,
        "the ALPN-negotiated connection was used, then reused"
    );
    assert_eq!(client.http2_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_stream_leaves_the_others_alone() {
    let sink = sink(true).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    client
        .upload_file(h2_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    let slow = client.upload_file(
        h2_options(sink.url("/upload?delay_ms=3000"), &file).timeout(Duration::from_millis(200)),
    );
    let other = client.upload_file(h2_options(sink.url("/upload?delay_ms=500"), &file));
    assert_eq!(slow.await.unwrap_err().kind(), ErrorKind::Timeout);
    let res = other
        .await
        .expect("the other stream is untouched by the timeout");
    assert!(res.profile.unwrap().socket_reused);
    assert_eq!(sink.stats().connections_accepted, 1);
}

/// Two concurrent uploads on one h2 connection, plain h2c and over TLS: each stream's
/// acknowledged end is the kernel's stamp of its own last body byte, before its response; its
/// progress counts acknowledged bytes, rises, and ends at the body size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_concurrent_stream_gets_its_own_acknowledged_end_and_progress() {
    for tls in [false, true] {
        let sink = sink(tls).await;
        let client = if tls { client_for(&sink) } else { h2c_client() };
        let dir = tempfile::tempdir().unwrap();
        let sizes = [3 * 1024 * 1024 + 7, 1024 * 1024 + 3];
        let files: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| make_file(dir.path(), &format!("s{i}.bin"), n))
            .collect();
        let mut runs = Vec::new();
        for f in &files {
            let task = client.upload_file(h2_options(sink.url("/upload"), f));
            let progress = Arc::new(Mutex::new(Vec::new()));
            let p2 = progress.clone();
            task.on_progress_update(move |p| p2.lock().unwrap().push(*p));
            runs.push((task, progress));
        }
        let mut connections = std::collections::HashSet::new();
        for ((task, progress), file) in runs.into_iter().zip(&files) {
            let res = task.await.unwrap();
            let v = verdict(&res);
            assert_eq!(v["files"][0]["sha256"].as_str().unwrap(), sha256_file(file));
            connections.insert(v["connection"]["id"].as_u64().unwrap());
            let p = res.profile.unwrap();
            let ext = res.profile_extensions.unwrap();
            assert_eq!(p.protocol, "h2");
            assert_eq!(ext.progress_basis, "acknowledged", "tls {tls}");
            assert_eq!(ext.ack_source, "kernel", "tls {tls}: {ext:?}");
            assert!(
                ext.body_acked_end >= p.request_start && ext.body_acked_end <= p.response_start,
                "tls {tls}: bodyAckedEnd {} outside requestStart {} .. responseStart {}",
                ext.body_acked_end,
                p.request_start,
                p.response_start
            );
            let body = v["receivedBytes"].as_u64().unwrap();
            let events = progress.lock().unwrap();
            assert!(events
                .windows(2)
                .all(|w| w[0].total_bytes_sent < w[1].total_bytes_sent));
            let last = events.last().unwrap();
            assert_eq!((last.total_bytes_sent, last.progress), (body, 100));
        }
        assert_eq!(connections.len(), 1, "tls {tls}: one connection");
    }
}

/// A client that does not track acknowledgements (a load generator's switch): written progress
/// and no acknowledged end, over h2 and HTTP/1.1 alike; the upload itself is the same.
#[tokio::test]
async fn without_ack_tracking_progress_counts_written_bytes() {
    let sink = sink(true).await;
    let client = Client::builder()
        .no_proxy()
        .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
        .track_acknowledgements(false)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 300_000);
    for h2 in [true, false] {
        let res = client
            .upload_file(h2_options(sink.url("/upload"), &file).enable_http2(h2))
            .await
            .unwrap();
        assert_eq!(
            verdict(&res)["files"][0]["sha256"].as_str().unwrap(),
            sha256_file(&file)
        );
        let ext = res.profile_extensions.unwrap();
        assert_eq!(ext.progress_basis, "written", "h2 {h2}");
        assert_eq!(ext.body_acked_end, 0.0, "h2 {h2}");
        assert_eq!(ext.ack_source, "", "h2 {h2}");
    }
}
