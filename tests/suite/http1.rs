//! The library against the independent sink, over plain HTTP/1.1 and over TLS.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use uploadfile::{Callbacks, Client, ErrorKind, UploadOptions};

async fn fields_and_hash(tls: bool) {
    let sink = sink(tls).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "photo.png", 300_000);
    let res = client
        .upload_file(
            UploadOptions::new(sink.url("/upload"), &file, "file")
                .form_data("user", "test")
                .form_data("n", 42)
                .header("X-Trace", "abc"),
        )
        .await
        .expect("upload succeeds");
    assert_eq!(res.status_code, 200);
    let v = verdict(&res);
    assert_eq!(
        fields(&v),
        vec![("user".into(), "test".into()), ("n".into(), "42".into())]
    );
    let f = &v["files"][0];
    assert_eq!(f["field"], "file");
    assert_eq!(f["filename"], "photo.png");
    assert_eq!(f["contentType"], "image/png");
    assert_eq!(f["size"], 300_000);
    assert_eq!(f["sha256"].as_str().unwrap(), sha256_file(&file));
    assert_eq!(v["headers"]["x-trace"], "abc");
    assert!(v["headers"]["user-agent"]
        .as_str()
        .unwrap()
        .starts_with("uploadfile/"));
    let p = res.profile.clone().expect("profile on by default");
    assert_eq!(p.protocol, "http1.1");
    assert!(!p.socket_reused);
    assert_eq!(p.peer_ip, "127.0.0.1");
    assert_eq!(p.port, sink.addr().port());
    let order = [
        p.invoke_start,
        p.queue_start,
        p.queue_end,
        p.fetch_start,
        p.domain_look_up_start,
        p.domain_look_up_end,
        p.connect_start,
        p.connect_end,
        p.request_start,
        p.request_end,
        p.response_start,
        p.response_end,
    ];
    assert!(order.iter().all(|t| *t > 1.6e12), "{order:?}");
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    if tls {
        assert!(p.connect_start <= p.ssl_connection_start);
        assert!(p.ssl_connection_start < p.ssl_connection_end);
        assert!(p.ssl_connection_end <= p.connect_end);
        let ext = res.profile_extensions.as_ref().unwrap();
        assert!(ext.tls_version.starts_with("TLSv1."), "{}", ext.tls_version);
        assert_eq!(ext.alpn, "http/1.1");
    } else {
        assert_eq!((p.ssl_connection_start, p.ssl_connection_end), (0.0, 0.0));
    }
    // Byte counts at HTTP level: at least the body, and what the sink says it received.
    assert!(p.send_bytes_count > 300_000);
    // sendBytesCount = head + body; the body is exactly what the sink read.
    let ext = res.profile_extensions.as_ref().unwrap();
    assert_eq!(v["receivedBytes"].as_u64().unwrap(), ext.body_bytes_sent);
    let head_len = p.send_bytes_count - ext.body_bytes_sent;
    assert!((100..1000).contains(&head_len), "head of {head_len} bytes");
    assert!(p.received_byted_count as usize > res.data.len());
    // Measured from the kernel: the connection's RTT, and when the last body byte was acked.
    assert!(p.rtt > 0.0 && p.rtt < 200.0, "rtt {}", p.rtt);
    assert_eq!(
        p.transport_rtt_estimate, p.rtt,
        "one observation: the estimate is it"
    );
    assert!(p.http_rtt_estimate > 0.0);
    assert_eq!(p.estimate_nettype, 5, "loopback is 4g");
    assert_eq!(ext.progress_basis, "acknowledged");
    assert!(
        ext.body_acked_end >= p.request_start,
        "{} < {}",
        ext.body_acked_end,
        p.request_start
    );
    assert!(ext.body_acked_end <= p.response_end, "{ext:?} {p:?}");
    assert!(["kernel", "poll"].contains(&ext.ack_source.as_str()));
}

#[tokio::test]
async fn plain_fields_and_file_hash_verified_by_the_sink() {
    fields_and_hash(false).await;
}

#[tokio::test]
async fn tls_fields_and_file_hash_verified_by_the_sink() {
    fields_and_hash(true).await;
}

async fn awkward_names(tls: bool) {
    let sink = sink(tls).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "my \"odd\" 100% fïlé名.txt", 1000);
    let res = client
        .upload_file(
            UploadOptions::new(sink.url("/upload"), &file, "the \"file\" field")
                .form_data("a \"quoted\" name", "value with \"quotes\"")
                .form_data("lines", "multi\r\nline\r\nvalue\nand a bare LF")
                .form_data("名前", "值 100%"),
        )
        .await
        .unwrap();
    assert_eq!(res.status_code, 200, "{}", res.data);
    let v = verdict(&res);
    // multer decodes nothing: it sees what browsers and curl send (%22). Names with CR, LF or
    // NUL are refused (tests/suite/bad_input.rs); values keep their line breaks exactly.
    assert_eq!(
        fields(&v),
        vec![
            ("a %22quoted%22 name".into(), "value with \"quotes\"".into()),
            (
                "lines".into(),
                "multi\r\nline\r\nvalue\nand a bare LF".into()
            ),
            ("名前".into(), "值 100%".into()),
        ]
    );
    let f = &v["files"][0];
    assert_eq!(f["field"], "the %22file%22 field");
    assert_eq!(f["filename"], "my %22odd%22 100% fïlé名.txt");
    assert_eq!(f["contentType"], "text/plain");
    assert_eq!(f["sha256"].as_str().unwrap(), sha256_file(&file));
}

#[tokio::test]
async fn plain_names_and_filenames_are_escaped_like_browsers() {
    awkward_names(false).await;
}

#[tokio::test]
async fn tls_names_and_filenames_are_escaped_like_browsers() {
    awkward_names(true).await;
}

#[tokio::test]
async fn empty_file() {
    for tls in [false, true] {
        let sink = sink(tls).await;
        let client = client_for(&sink);
        let dir = tempfile::tempdir().unwrap();
        let file = make_file(dir.path(), "empty.bin", 0);
        let res = client
            .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
            .await
            .unwrap();
        let v = verdict(&res);
        assert_eq!(v["files"][0]["size"], 0);
        assert_eq!(v["files"][0]["contentType"], "application/octet-stream");
        assert_eq!(
            v["files"][0]["sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

#[tokio::test]
async fn non_2xx_is_success() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    for status in [404u16, 500, 503] {
        let res = client
            .upload_file(UploadOptions::new(
                sink.url(&format!("/upload?status={status}")),
                &file,
                "file",
            ))
            .await
            .expect("an HTTP error status is still a success");
        assert_eq!(res.status_code, status);
    }
}

#[tokio::test]
async fn headers_received_fires_before_completion_and_progress_is_monotonic() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", 3 * 1024 * 1024 + 17);
    let done = Arc::new(AtomicBool::new(false));
    let headers_seen_before_done = Arc::new(Mutex::new(None));
    let progress = Arc::new(Mutex::new(Vec::new()));
    // The sink answers a large body slowly enough that the headers arrive before the end.
    let task = client.upload_file(UploadOptions::new(
        sink.url("/upload?body_size=200000"),
        &file,
        "file",
    ));
    {
        let (d, h) = (done.clone(), headers_seen_before_done.clone());
        task.on_headers_received(move |ev| {
            *h.lock().unwrap() = Some((
                !d.load(Ordering::SeqCst),
                ev.status_code,
                ev.header.get("content-length").map(str::to_string),
            ));
        });
        let p = progress.clone();
        task.on_progress_update(move |ev| p.lock().unwrap().push(*ev));
    }
    let res = task.await.unwrap();
    done.store(true, Ordering::SeqCst);
    assert_eq!(res.data.len(), 200_000);
    let (before, status, len) = headers_seen_before_done
        .lock()
        .unwrap()
        .clone()
        .expect("headers event fired");
    assert!(before);
    assert_eq!(status, 200);
    assert_eq!(len.as_deref(), Some("200000"));
    let events = progress.lock().unwrap();
    assert!(events.len() > 2, "{} progress events", events.len());
    assert!(events
        .windows(2)
        .all(|w| w[0].total_bytes_sent < w[1].total_bytes_sent && w[0].progress <= w[1].progress));
    let last = events.last().unwrap();
    assert_eq!(last.progress, 100);
    assert_eq!(last.total_bytes_sent, last.total_bytes_expected_to_send);
    assert!(events[..events.len() - 1].iter().all(|e| e.progress < 100));
    let p = res.profile.unwrap();
    assert!(p.throughput_kbps > 0.0);
    assert!(
        p.downstream_throughput_kbps_estimate > 0.0,
        "a 200 KB response is an observation"
    );
    assert!(p.received_byted_count > 200_000);
}

#[tokio::test]
async fn abort_mid_upload_fails_with_abort_and_the_connection_is_not_reused() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let small = make_file(dir.path(), "small.bin", 100);
    // Warm a connection into the pool.
    client
        .upload_file(UploadOptions::new(sink.url("/upload"), &small, "file"))
        .await
        .unwrap();
    assert_eq!(client.idle_connections(), 1);
    // A large upload to a sink that delays: abort once some progress was made.
    let big = make_file(dir.path(), "big.bin", 8 * 1024 * 1024);
    let task = client.upload_file(UploadOptions::new(
        sink.url("/upload?delay_ms=5000"),
        &big,
        "file",
    ));
    let handle = task.handle();
    task.on_progress_update(move |p| {
        if p.total_bytes_sent > 1024 * 1024 {
            handle.abort();
        }
    });
    let err = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("abort ends the task promptly")
        .unwrap_err();
    assert_eq!(err.err_msg(), "uploadFile:fail abort");
    assert_eq!(err.kind(), ErrorKind::Abort);
    // The aborted connection was the pooled one; it is gone, and the next upload opens a new one.
    assert_eq!(client.idle_connections(), 0);
    let res = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &small, "file"))
        .await
        .unwrap();
    assert!(!res.profile.as_ref().unwrap().socket_reused);
    assert_eq!(verdict(&res)["connection"]["request"], 1);
}

#[tokio::test]
async fn abort_before_it_starts() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let task = client.upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"));
    task.abort();
    task.abort();
    assert_eq!(task.await.unwrap_err().kind(), ErrorKind::Abort);
}

#[tokio::test]
async fn timeout_bounds_the_whole_upload() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let started = std::time::Instant::now();
    let err = client
        .upload_file(
            UploadOptions::new(sink.url("/upload?delay_ms=3000"), &file, "file")
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.err_msg(), "uploadFile:fail timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn file_errors_are_clear_and_send_nothing() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let err = client
        .upload_file(UploadOptions::new(
            sink.url("/upload"),
            dir.path().join("missing.png"),
            "file",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FileNotFound);
    assert!(
        err.err_msg().starts_with("uploadFile:fail file not found"),
        "{err}"
    );
    let err = client
        .upload_file(UploadOptions::new(sink.url("/upload"), dir.path(), "file"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotAFile);
    assert!(err.detail().contains("is a directory"), "{err}");
    assert_eq!(sink.stats().connections_accepted, 0, "nothing was sent");
}

#[tokio::test]
async fn forbidden_headers_are_refused_before_any_byte() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    for (name, value) in [
        ("Referer", "https://servicewechat.com/"),
        ("referer", "x"),
        ("X-Evil", "a\r\nInjected: yes"),
        ("X-Evil", "a\nb"),
        ("Bad Name", "v"),
    ] {
        let err = client
            .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file").header(name, value))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidHeader,
            "{name:?} {value:?}: {err}"
        );
        assert!(err.err_msg().starts_with("uploadFile:fail invalid header"));
    }
    assert_eq!(sink.stats().connections_accepted, 0);
}

#[tokio::test]
async fn unknown_ca_is_refused() {
    let sink = sink(true).await;
    let client = Client::builder().no_proxy().build().unwrap(); // webpki roots only
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let err = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls);
    assert!(
        err.err_msg()
            .starts_with("uploadFile:fail ssl handshake failed"),
        "{err}"
    );
    assert!(err.detail().to_lowercase().contains("certificate"), "{err}");
}

async fn keep_alive_reuse(tls: bool) {
    let sink = sink(tls).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 5000);
    let first = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    let second = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    let (v1, v2) = (verdict(&first), verdict(&second));
    assert_eq!(
        v1["connection"]["id"], v2["connection"]["id"],
        "the sink saw one connection"
    );
    assert_eq!(v2["connection"]["request"], 2);
    let p1 = first.profile.unwrap();
    let p = second.profile.unwrap();
    assert!(!p1.socket_reused);
    assert!(p.socket_reused);
    for v in [
        p.domain_look_up_start,
        p.domain_look_up_end,
        p.connect_start,
        p.connect_end,
    ] {
        assert_eq!(v, p.fetch_start);
    }
    if tls {
        assert_eq!(p.ssl_connection_start, p.fetch_start);
        assert_eq!(p.ssl_connection_end, p.fetch_start);
    } else {
        assert_eq!(p.ssl_connection_start, 0.0);
    }
    assert!(p.fetch_start <= p.request_start);
    let ext = second.profile_extensions.unwrap();
    assert_eq!(ext.connection_requests_before, 1);
    assert_eq!(ext.connect_attempts, 0);
    assert_eq!(sink.stats().connections_accepted, 1);
}

/// On a reused plain connection every upload still gets the kernel's stamp of its last body
/// byte's acknowledgement, found by its key, whatever path the body took (one vectored write,
/// or `sendfile` and a separate epilogue), and its own RTT.
#[tokio::test]
async fn each_upload_on_a_reused_connection_gets_its_own_ack_stamp() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let sizes = [4096, 10, 300_000, 4096, 2_000_000, 1];
    let mut last_end = 0.0;
    let mut sources = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let file = make_file(dir.path(), &format!("f{i}.bin"), size);
        let res = client
            .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
            .await
            .unwrap();
        let p = res.profile.clone().unwrap();
        let ext = res.profile_extensions.clone().unwrap();
        let received = verdict(&res)["receivedBytes"].as_u64().unwrap();
        assert_eq!(received, ext.body_bytes_sent);
        assert!(
            received > size as u64,
            "upload {i}: the file and its framing"
        );
        assert_eq!(p.socket_reused, i > 0, "upload {i}");
        assert!(p.rtt > 0.0, "upload {i}: rtt {}", p.rtt);
        assert!(
            ext.body_acked_end >= p.request_start && ext.body_acked_end <= p.response_end,
            "upload {i}: acked {} outside {}..{}",
            ext.body_acked_end,
            p.request_start,
            p.response_end
        );
        assert!(
            ext.body_acked_end > last_end,
            "upload {i} reused an old stamp"
        );
        last_end = ext.body_acked_end;
        sources.push(ext.ack_source.clone());
    }
    assert_eq!(sink.stats().connections_accepted, 1);
    if cfg!(target_os = "linux") {
        assert!(
            sources.iter().all(|s| s == "kernel"),
            "every upload stamped by the kernel: {sources:?}"
        );
    }
}

#[tokio::test]
async fn plain_keep_alive_reuse() {
    keep_alive_reuse(false).await;
}

#[tokio::test]
async fn tls_keep_alive_reuse() {
    keep_alive_reuse(true).await;
}

async fn server_closes_idle_pooled_connection(tls: bool) {
    let sink = sink(tls).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 5000);
    client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    assert_eq!(client.idle_connections(), 1);
    sink.close_idle_connections();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .expect("a closed pooled connection is replaced transparently");
    assert!(!res.profile.as_ref().unwrap().socket_reused);
    assert_eq!(verdict(&res)["connection"]["request"], 1);
    assert_eq!(sink.stats().connections_accepted, 2);
}

#[tokio::test]
async fn plain_server_closes_idle_pooled_connection() {
    server_closes_idle_pooled_connection(false).await;
}

#[tokio::test]
async fn tls_server_closes_idle_pooled_connection() {
    server_closes_idle_pooled_connection(true).await;
}

async fn early_response(tls: bool) {
    let sink = sink(tls).await;
    let mut builder = Client::builder().no_proxy().expect_continue_threshold(None);
    if let Some(pem) = sink.ca_pem() {
        builder = builder.add_root_certificates_pem(pem.as_bytes());
    }
    let client = builder.build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", 16 * 1024 * 1024);
    let res = client
        .upload_file(UploadOptions::new(
            sink.url("/upload?early=1&status=413"),
            &file,
            "file",
        ))
        .await
        .expect("an early 413 is a success, not a broken pipe");
    assert_eq!(res.status_code, 413);
    let ext = res.profile_extensions.unwrap();
    assert!(ext.early_response);
    assert!(ext.body_bytes_sent < 16 * 1024 * 1024);
    // The response came before the body ended: requestEnd never happened (0), and
    // responseStart follows requestStart (docs/profile.md, "Early responses").
    let p = res.profile.unwrap();
    assert_eq!(p.request_end, 0.0);
    assert!(p.request_start < p.response_start && p.response_start <= p.response_end);
    assert_eq!(
        client.idle_connections(),
        0,
        "never pooled after an early response"
    );
}

#[tokio::test]
async fn plain_early_413_is_success() {
    early_response(false).await;
}

#[tokio::test]
async fn tls_early_413_is_success() {
    early_response(true).await;
}

#[tokio::test]
async fn expect_continue_for_large_bodies() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", 2 * 1024 * 1024);
    let res = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    let v = verdict(&res);
    assert_eq!(v["headers"]["expect"], "100-continue");
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    let ext = res.profile_extensions.unwrap();
    assert!(ext.expect_continue);
    assert_eq!(ext.first_interim_status, 100);
    assert!(ext.first_interim_response > 0.0);
    let p = res.profile.unwrap();
    assert!(ext.first_interim_response <= p.response_start);
    // The 100 arrived quickly: we did not sit out the 1 s wait.
    assert!(p.request_end - p.request_start < 900.0);
}

#[tokio::test]
async fn callbacks_success_then_complete_exactly_once() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let task = client.upload_file_with_callbacks(
        UploadOptions::new(sink.url("/upload?status=201"), &file, "file"),
        Callbacks::new()
            .success(move |r| {
                l1.lock()
                    .unwrap()
                    .push(format!("success {}", r.status_code))
            })
            .fail(move |e| l2.lock().unwrap().push(format!("fail {e}")))
            .complete(move |r| l3.lock().unwrap().push(format!("complete {}", r.is_ok()))),
    );
    task.await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["success 201", "complete true"]);

    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let task = client.upload_file_with_callbacks(
        UploadOptions::new(sink.url("/upload"), dir.path().join("nope"), "file"),
        Callbacks::new()
            .success(move |_| l1.lock().unwrap().push("success".to_string()))
            .fail(move |e| {
                l2.lock().unwrap().push(e.err_msg());
                panic!("a panicking fail callback must not stop complete");
            })
            .complete(move |r| l3.lock().unwrap().push(format!("complete {}", r.is_ok()))),
    );
    assert!(task.await.is_err());
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert!(log[0].starts_with("uploadFile:fail file not found"));
    assert_eq!(log[1], "complete false");
}

#[tokio::test]
async fn the_default_client_works_from_any_runtime() {
    let sink = sink(false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let res = uploadfile::upload_file(
        UploadOptions::from_json(&format!(
            r#"{{"url":"{}","filePath":"{}","name":"file","formData":{{"user":"test"}}}}"#,
            sink.url("/upload"),
            file.display()
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(fields(&verdict(&res)), vec![("user".into(), "test".into())]);
}

#[tokio::test]
async fn response_larger_than_the_cap_fails_cleanly() {
    let sink = sink(false).await;
    let client = Client::builder()
        .no_proxy()
        .max_response_body(1000)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let err = client
        .upload_file(UploadOptions::new(
            sink.url("/upload?body_size=5000"),
            &file,
            "file",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResponseTooLarge);
    assert_eq!(client.idle_connections(), 0);
}

#[tokio::test]
async fn connection_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let err = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(
            format!("http://127.0.0.1:{port}/"),
            &file,
            "file",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
}

#[tokio::test]
async fn server_closing_without_answer_is_connection_closed() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    let err = client
        .upload_file(UploadOptions::new(
            sink.url("/upload?close=1"),
            &file,
            "file",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{err}");
}

#[tokio::test]
async fn profile_off_skips_the_profile_and_progress_counts_written_bytes() {
    let sink = sink(false).await;
    let client = client_for(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100_000);
    let task = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file").enable_profile(false));
    let last = Arc::new(Mutex::new(None));
    let l = last.clone();
    task.on_progress_update(move |p| *l.lock().unwrap() = Some(*p));
    let res = task.await.unwrap();
    assert!(res.profile.is_none() && res.profile_extensions.is_none());
    assert_eq!(last.lock().unwrap().unwrap().progress, 100);
}

/// `UploadSuccess::request_header`: the request's header fields as sent, in order, and what the
/// sink received matches them.
#[tokio::test]
async fn request_header_reports_what_was_sent() {
    let sink = sink(false).await;
    let client = Client::builder()
        .no_proxy()
        .expect_continue_threshold(Some(1000))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 5000);
    let res = client
        .upload_file(
            uploadfile::UploadOptions::new(sink.url("/upload"), &file, "file")
                .header("X-Token", "abc"),
        )
        .await
        .unwrap();
    let names: Vec<&str> = res.request_header.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "Host",
            "User-Agent",
            "Accept",
            "X-Token",
            "Content-Type",
            "Content-Length",
            "Expect"
        ]
    );
    let v = verdict(&res);
    for (name, value) in &res.request_header {
        assert_eq!(
            v["headers"][name.to_ascii_lowercase()].as_str(),
            Some(value.as_str()),
            "{name}"
        );
    }
}
