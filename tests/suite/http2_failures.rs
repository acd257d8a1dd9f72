//! HTTP/2 failures, against a scripted `h2` server (h2c with prior knowledge on 127.0.0.1):
//! REFUSED_STREAM, GOAWAY, RST_STREAM, a dropped connection.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::make_file;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use tokio::net::TcpListener;
use uploadfile::{Client, ErrorKind, UploadOptions};

/// What the scripted server does with the n-th stream it accepts on the n-th connection.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Read the body, answer 200 "ok".
    Ok,
    /// Reset the stream with this reason before answering.
    Reset(Reason),
    /// Send GOAWAY (last stream id 0: nothing processed) and close the connection.
    GoAway,
    /// Read a little of the body, then drop the TCP connection.
    Drop,
}

/// Serve connections in order; connection `i` applies `script[i]` to each of its streams.
async fn scripted(script: Vec<Act>) -> (String, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut served = 0;
        for act in script {
            let (tcp, _) = listener.accept().await.unwrap();
            served += 1;
            let mut conn = h2::server::handshake(tcp).await.unwrap();
            if let Act::GoAway = act {
                conn.abrupt_shutdown(Reason::NO_ERROR);
                let _ = conn.accept().await; // drive it until the GOAWAY is out and the connection ends
                continue;
            }
            let mut streams = Vec::new();
            while let Some(Ok((req, respond))) = conn.accept().await {
                streams.push(tokio::spawn(handle(req.into_body(), respond, act)));
                if let Act::Drop = act {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break; // dropping `conn` closes the TCP connection under every stream
                }
                if let Act::Reset(Reason::REFUSED_STREAM) = act {
                    // One refused stream per connection is enough; serve the rest normally.
                    while let Some(Ok((req, respond))) = conn.accept().await {
                        streams.push(tokio::spawn(handle(req.into_body(), respond, Act::Ok)));
                    }
                }
            }
        }
        served
    });
    (url, task)
}

async fn handle(mut body: RecvStream, mut respond: SendResponse<Bytes>, act: Act) {
    match act {
        Act::Reset(reason) => respond.send_reset(reason),
        Act::Drop => {
            let _ = body.data().await;
            std::future::pending::<()>().await;
        }
        Act::Ok | Act::GoAway => {
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let response = http::Response::builder().status(200).body(()).unwrap();
            let mut stream = respond.send_response(response, false).unwrap();
            let _ = stream.send_data(Bytes::from_static(b"ok"), true);
        }
    }
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .http2_prior_knowledge(true)
        .build()
        .unwrap()
}

fn options(url: &str, file: &std::path::Path) -> UploadOptions {
    UploadOptions::new(url, file, "file")
        .enable_http2(true)
        .timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn a_refused_stream_is_retried_once() {
    let (url, server) = scripted(vec![Act::Reset(Reason::REFUSED_STREAM)]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 50_000);
    let client = client();
    let res = client
        .upload_file(options(&url, &file))
        .await
        .expect("retried after REFUSED_STREAM");
    assert_eq!(res.data, "ok");
    assert_eq!(res.profile.unwrap().protocol, "h2");
    assert_eq!(res.profile_extensions.unwrap().stale_connection_retries, 1);
    drop(client);
    server.abort();
}

#[tokio::test]
async fn a_goaway_before_the_stream_was_processed_retries_on_a_new_connection() {
    let (url, server) = scripted(vec![Act::GoAway, Act::Ok]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 50_000);
    let client = client();
    let res = client
        .upload_file(options(&url, &file))
        .await
        .expect("retried after GOAWAY");
    assert_eq!(res.data, "ok");
    assert!(
        !res.profile.unwrap().socket_reused,
        "it went on a new connection"
    );
    // Dropping the client closes its pooled connection, which ends the server's loop.
    drop(client);
    let served = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server ends")
        .unwrap();
    assert_eq!(served, 2, "the retry opened a second connection");
}

#[tokio::test]
async fn other_resets_fail_with_a_clear_reason() {
    let (url, server) = scripted(vec![Act::Reset(Reason::INTERNAL_ERROR)]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 50_000);
    let err = client()
        .upload_file(options(&url, &file))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamReset, "{err}");
    assert!(
        err.err_msg().starts_with("uploadFile:fail stream reset"),
        "{err}"
    );
    assert!(
        err.detail().to_ascii_lowercase().contains("internal"),
        "{err}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_every_stream_on_it_with_the_same_reason() {
    let (url, server) = scripted(vec![Act::Drop]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 4 * 1024 * 1024);
    let client = client();
    let a = client.upload_file(options(&url, &file));
    let b = client.upload_file(options(&url, &file));
    let (ea, eb) = (a.await.unwrap_err(), b.await.unwrap_err());
    assert_eq!(ea.kind(), ErrorKind::ConnectionClosed, "{ea}");
    assert_eq!(ea.err_msg(), eb.err_msg());
    server.abort();
}

/// A server allowing 2 concurrent streams: the 3rd and 4th uploads wait for a slot on the same
/// connection, and the wait is their queue time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_max_concurrent_streams_wait_and_the_queue_shows_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut conn = h2::server::Builder::new()
                .max_concurrent_streams(2)
                .handshake::<_, Bytes>(tcp)
                .await
                .unwrap();
            tokio::spawn(async move {
                while let Some(Ok((req, respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        handle(req.into_body(), respond, Act::Ok).await;
                    });
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10_000);
    let client = client();
    // Open the connection first, so its SETTINGS are known.
    client.upload_file(options(&url, &file)).await.unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| client.upload_file(options(&url, &file)))
        .collect();
    let mut waits = Vec::new();
    for t in tasks {
        let p = t.await.unwrap().profile.unwrap();
        assert_eq!(p.protocol, "h2");
        assert!(p.socket_reused);
        waits.push(p.queue_end - p.queue_start);
    }
    waits.sort_by(|a, b| a.total_cmp(b));
    eprintln!("queue waits at MAX_CONCURRENT_STREAMS=2: {waits:?}");
    assert!(waits[1] < 50.0, "two streams start at once: {waits:?}");
    assert!(
        waits[2] > 250.0 && waits[3] > 250.0,
        "two wait for a slot: {waits:?}"
    );
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection"
    );
    server.abort();
}

/// Abort mid-body: the server sees the stream reset with CANCEL, and the connection lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_sends_rst_stream_cancel() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        let (req, _respond) = conn.accept().await.unwrap().unwrap();
        let mut body = req.into_body();
        tokio::spawn(async move { while conn.accept().await.is_some() {} });
        // Read without answering until the client gives up on the stream.
        let reason = loop {
            match body.data().await {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                Some(Err(e)) => break e.reason(),
                None => break None,
            }
        };
        let _ = seen_tx.send(reason);
    });
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", 32 * 1024 * 1024);
    let task = client().upload_file(options(&url, &file));
    let handle = task.handle();
    task.on_progress_update(move |p| {
        if p.total_bytes_sent > 1024 * 1024 {
            handle.abort();
        }
    });
    assert_eq!(task.await.unwrap_err().kind(), ErrorKind::Abort);
    let reason = tokio::time::timeout(Duration::from_secs(5), seen_rx)
        .await
        .expect("the server saw the stream end")
        .unwrap();
    assert_eq!(reason, Some(Reason::CANCEL));
    server.abort();
}
