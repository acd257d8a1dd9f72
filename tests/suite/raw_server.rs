//! The library against a scripted raw TCP server, for response shapes hyper never sends
//! (chunked with trailers, close-delimited, HTTP/1.0) and for connection life-cycle cases.

use crate::common;

use std::time::Duration;

use common::{make_file, read_request, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uploadfile::{Client, UploadOptions};

#[tokio::test]
async fn chunked_response_with_trailers_is_decoded() {
    let (url, server) = serve(
        vec![b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-X: y\r\n\r\n"],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 100);
    let res = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    assert_eq!(res.status_code, 201);
    assert_eq!(res.data, "hello world");
    assert_eq!(res.header.get("x-a"), Some("1"));
    let p = res.profile.unwrap();
    assert!(
        p.received_byted_count > 80,
        "framing and trailers count: {}",
        p.received_byted_count
    );
    let heads = server.await.unwrap();
    assert!(
        heads[0].starts_with("POST /upload HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(heads[0].contains("\r\nHost: 127.0.0.1:"));
    assert!(heads[0].contains("\r\nContent-Type: multipart/form-data; boundary="));
}

#[tokio::test]
async fn close_delimited_response_ends_at_eof() {
    let (url, server) = serve(
        vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close"],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 100);
    let client = Client::builder().no_proxy().build().unwrap();
    let task = client.upload_file(UploadOptions::new(url, &file, "file"));
    let server_done = tokio::spawn(async move { server.await.unwrap() });
    let res = task.await.unwrap();
    server_done.await.unwrap();
    assert_eq!(res.data, "body until close");
    assert_eq!(
        client.idle_connections(),
        0,
        "a close-delimited response ends the connection"
    );
}

#[tokio::test]
async fn http10_response_without_keep_alive_is_not_pooled() {
    let (url, _server) = serve(
        vec![b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 100);
    let client = Client::builder().no_proxy().build().unwrap();
    let res = client
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    assert_eq!(res.data, "ok");
    assert_eq!(client.idle_connections(), 0);
}

#[tokio::test]
async fn body_is_sent_after_the_continue_wait_when_no_100_comes() {
    // The server never sends 100 Continue but waits for the body: the client must send it
    // after expect_continue_timeout.
    let (url, server) = serve(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 2 * 1024 * 1024);
    let client = Client::builder()
        .no_proxy()
        .expect_continue_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let res = client
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    assert_eq!(res.data, "ok");
    let ext = res.profile_extensions.unwrap();
    assert!(ext.expect_continue);
    assert_eq!(ext.first_interim_status, 0);
    let p = res.profile.unwrap();
    let waited = p.request_end - ext.request_head_end;
    assert!(
        waited >= 290.0,
        "waited {waited} ms for a 100 that never came"
    );
    assert!(server.await.unwrap()[0].contains("Expect: 100-continue"));
}

#[tokio::test]
async fn expect_continue_can_be_turned_off() {
    let (url, server) = serve(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 2 * 1024 * 1024);
    let client = Client::builder()
        .no_proxy()
        .expect_continue_threshold(None)
        .build()
        .unwrap();
    client
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    assert!(!server.await.unwrap()[0]
        .to_ascii_lowercase()
        .contains("expect"));
}

#[tokio::test]
async fn a_pooled_connection_dropped_after_our_check_is_replaced_once() {
    // Connection 1 answers one request with keep-alive, then reads the next request head and
    // closes without answering (as a server whose keep-alive timer fired at that moment).
    // Connection 2 answers normally. The second upload must succeed on connection 2.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut s1, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_request(&mut s1, &mut buf, false).await.unwrap();
        s1.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
            .await
            .unwrap();
        // Wait for the next request's first bytes, then close without answering.
        let mut one = [0u8; 1];
        let _ = s1.read(&mut one).await;
        drop(s1);
        let (mut s2, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_request(&mut s2, &mut buf, false).await.unwrap();
        s2.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    let client = Client::builder().no_proxy().build().unwrap();
    let first = client
        .upload_file(UploadOptions::new(url.clone(), &file, "file"))
        .await
        .unwrap();
    assert_eq!(first.data, "first");
    let second = client
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap();
    assert_eq!(second.data, "second");
    let ext = second.profile_extensions.unwrap();
    assert_eq!(ext.stale_connection_retries, 1);
    assert_eq!(ext.connection_requests_before, 0);
    let p = second.profile.unwrap();
    assert!(
        !p.socket_reused,
        "the profile shows the connection that carried the request"
    );
    assert!(p.connect_start > p.fetch_start);
    server.await.unwrap();
}

#[tokio::test]
async fn garbage_response_is_invalid_response() {
    let (url, _server) = serve(vec![b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    let err = Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .upload_file(UploadOptions::new(url, &file, "file"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), uploadfile::ErrorKind::InvalidResponse, "{err}");
}

#[tokio::test]
async fn idle_timeout_expires_pooled_connections() {
    let sink = common::sink(false).await;
    let client = Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let res = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    assert!(!res.profile.unwrap().socket_reused);
    assert_eq!(sink.stats().connections_accepted, 2);
}

#[tokio::test]
async fn connection_close_from_the_server_is_honoured() {
    let sink = common::sink(false).await;
    let client = Client::builder().no_proxy().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10);
    client
        .upload_file(UploadOptions::new(
            sink.url("/upload?keepalive=0"),
            &file,
            "file",
        ))
        .await
        .unwrap();
    assert_eq!(client.idle_connections(), 0);
    let res = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    assert!(!res.profile.unwrap().socket_reused);
}
