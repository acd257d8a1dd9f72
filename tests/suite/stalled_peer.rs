//! A peer that stops reading in the middle of a body, on a connection an earlier upload used.
//!
//! The earlier upload's `TX_ACK` timestamp (issue 4's `bodyAckedEnd`) arrives on the socket's
//! error queue, which epoll reports as `EPOLLERR`; tokio keeps that as a sticky "write closed"
//! readiness for as long as the socket stays registered. A writer that trusts readiness then
//! finds the socket writable forever, gets `EAGAIN` forever, and spins a core until the timeout.
//! Here the stalled upload must wait without burning the CPU, fail as `Timeout`, and leave the
//! client usable.

use crate::common;

use std::time::{Duration, Instant};

use common::{make_file, read_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uploadfile::{Client, ErrorKind, UploadOptions};

/// This thread's CPU time (user + system), from `/proc/thread-self/stat`, in clock ticks.
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// One connection: answer `answered` requests, then read the next request's head and stop
/// reading, holding the socket open until the client closes it.
async fn stall_after(
    answered: usize,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<usize>,
) {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        for _ in 0..answered {
            read_request(&mut s, &mut buf, true).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        }
        // The stalled request: its head (and a 100 Continue so the body starts), then nothing.
        while common::find(&buf, b"\r\n\r\n").is_none() {
            let mut chunk = vec![0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client closed before its request head");
            buf.extend_from_slice(&chunk[..n]);
        }
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        // Read nothing until the test has seen the upload end, then drain (bounded) until the
        // client closes.
        let _ = released.await;
        let mut more = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = s.read(&mut chunk) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => more += n,
                },
                _ = &mut deadline => break,
            }
        }
        more
    });
    (url, release, task)
}

/// Upload `file` to a peer that has stopped reading: the upload must end as `timeout` at its
/// timeout, having used little CPU on this (current-thread) runtime's thread.
async fn upload_into_the_stall(client: &Client, url: &str, file: &std::path::Path, case: &str) {
    let timeout = Duration::from_millis(1500);
    let cpu_before = thread_cpu_ticks();
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        client.upload_file(UploadOptions::new(url, file, "file").timeout(timeout)),
    )
    .await
    .expect("the upload's own timeout must end it")
    .unwrap_err();
    let wall = started.elapsed();
    let cpu = Duration::from_millis((thread_cpu_ticks() - cpu_before) * 10);
    assert_eq!(err.kind(), ErrorKind::Timeout, "{case}: {err}");
    assert_eq!(err.err_msg(), "uploadFile:fail timeout", "{case}");
    assert!(wall >= timeout, "{case}: {wall:?}");
    // A spinning writer takes the whole wall time; a waiting one takes the few milliseconds of
    // the writes that fit in the socket buffers.
    assert!(
        cpu < wall / 2,
        "{case}: the stalled upload used {cpu:?} of CPU in {wall:?}"
    );
}

async fn stalled_upload_waits_quietly(answered: usize, zero_copy: bool) {
    let dir = tempfile::tempdir().unwrap();
    let small = make_file(dir.path(), "small.bin", 600 * 1024);
    // Far more than loopback's socket buffers hold, so the writer must wait.
    let big = make_file(dir.path(), "big.bin", 64 * 1024 * 1024);
    let (url, release, server) = stall_after(answered).await;
    let client = Client::builder()
        .no_proxy()
        .zero_copy(zero_copy)
        .build()
        .unwrap();
    for _ in 0..answered {
        let res = client
            .upload_file(UploadOptions::new(url.clone(), &small, "file"))
            .await
            .unwrap();
        assert_eq!(res.data, "ok");
    }
    assert_eq!(client.idle_connections(), answered.min(1));

    let case = format!("answered={answered}, zero_copy={zero_copy}");
    upload_into_the_stall(&client, &url, &big, &case).await;
    assert_eq!(
        client.idle_connections(),
        0,
        "a timed-out connection is never pooled"
    );
    drop(client);
    let _ = release.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn a_reused_connection_whose_peer_stops_reading_waits_without_spinning_sendfile() {
    stalled_upload_waits_quietly(1, true).await;
}

#[tokio::test]
async fn a_reused_connection_whose_peer_stops_reading_waits_without_spinning_buffered() {
    stalled_upload_waits_quietly(1, false).await;
}

/// Over TLS, on a reused connection (tokio-rustls writes through tokio's own `poll_write`,
/// which the fresh registration covers as well).
#[tokio::test]
async fn a_reused_tls_connection_whose_peer_stops_reading_waits_without_spinning() {
    use common::hostile::{Act, HostileServer};
    let first = vec![
        Act::ReadHead,
        Act::Continue,
        Act::ReadToBodyEnd,
        Act::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        // The second request: its head, then nothing read.
        Act::ReadHead,
        Act::Continue,
        Act::Sleep(Duration::from_secs(20)),
    ];
    let server = HostileServer::start(true, vec![first]).await;
    let client = server.client(|b| b);
    let dir = tempfile::tempdir().unwrap();
    let small = make_file(dir.path(), "small.bin", 600 * 1024);
    let big = make_file(dir.path(), "big.bin", 64 * 1024 * 1024);
    let res = client
        .upload_file(UploadOptions::new(server.url.clone(), &small, "file"))
        .await
        .unwrap();
    assert_eq!(res.data, "ok");
    assert_eq!(client.idle_connections(), 1);
    upload_into_the_stall(&client, &server.url, &big, "TLS, reused").await;
    assert_eq!(
        server.accepted(),
        1,
        "the second upload reused the connection"
    );
}

#[tokio::test]
async fn a_fresh_connection_whose_peer_stops_reading_waits_without_spinning() {
    stalled_upload_waits_quietly(0, true).await;
}
