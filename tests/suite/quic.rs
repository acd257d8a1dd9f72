//! `enableQuic`: uploads as HTTP/3 streams over QUIC, against the sink's quinn + h3 endpoint,
//! and the fallback to TCP where QUIC does not answer.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use uploadfile::{Client, ErrorKind, UploadOptions};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

async fn h3_sink() -> SinkHandle {
    Sink::start(SinkConfig {
        tls: true,
        h3: true,
        ..SinkConfig::default()
    })
    .await
    .expect("sink starts")
}

fn quic_options(url: String, file: &std::path::Path) -> UploadOptions {
    UploadOptions::new(url, file, "file")
        .form_data("user", "test")
        .enable_quic(true)
}

fn quic_client(sink: &SinkHandle) -> Client {
    Client::builder()
        .no_proxy()
        .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
        .quic_fallback_after(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_upload_goes_over_http3_and_every_profile_field_is_measured() {
    let sink = h3_sink().await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "photo.png", 3 * 1024 * 1024 + 5);
    let task = client.upload_file(quic_options(sink.url("/upload"), &file));
    let progress = Arc::new(Mutex::new(Vec::new()));
    let p2 = progress.clone();
    task.on_progress_update(move |p| p2.lock().unwrap().push(*p));
    let headers = Arc::new(Mutex::new(None));
    let h2 = headers.clone();
    task.on_headers_received(move |h| *h2.lock().unwrap() = Some(h.status_code));
    let res = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("no hang")
        .unwrap();
    let v = verdict(&res);
    assert_eq!(v["protocol"], "HTTP/3", "{v}");
    assert_eq!(fields(&v), vec![("user".into(), "test".into())]);
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    let p = res.profile.unwrap();
    let ext = res.profile_extensions.unwrap();
    assert_eq!(p.protocol, "quic", "fallback: {}", ext.quic_fallback);
    assert_eq!(ext.quic_fallback, "");
    assert!(!p.socket_reused);
    // QUIC's handshake is the TLS handshake.
    assert_eq!(p.connect_start, p.ssl_connection_start);
    assert_eq!(p.connect_end, p.ssl_connection_end);
    assert!(p.connect_end > p.connect_start);
    assert_phases_in_order(&p);
    // HTTP/3-level byte counts: the body plus DATA and HEADERS framing.
    let body = v["receivedBytes"].as_u64().unwrap();
    assert!(
        p.send_bytes_count > body + 3,
        "{} vs body {body}",
        p.send_bytes_count
    );
    assert!(p.received_byted_count as usize > res.data.len());
    assert!(p.rtt > 0.0 && p.transport_rtt_estimate > 0.0);
    assert!(p.http_rtt_estimate > 0.0);
    assert_eq!(p.peer_ip, "127.0.0.1");
    assert_eq!(p.port, sink.addr().port());
    assert_eq!(ext.alpn, "h3");
    assert_eq!(ext.tls_version, "TLSv1.3");
    assert_eq!(ext.body_bytes_sent, body);
    assert!(ext.body_acked_end >= p.request_end, "{ext:?}");
    // When quinn received the ACK that completed the stream, not when the task noticed: never
    // after the response began (the server answered after reading the whole body).
    assert_eq!(ext.ack_source, "quic", "{ext:?}");
    assert!(
        ext.body_acked_end <= p.response_start,
        "bodyAckedEnd {} after responseStart {}",
        ext.body_acked_end,
        p.response_start
    );
    assert_eq!(*headers.lock().unwrap(), Some(200));
    let events = progress.lock().unwrap();
    assert!(events
        .windows(2)
        .all(|w| w[0].total_bytes_sent < w[1].total_bytes_sent));
    assert_eq!(events.last().unwrap().progress, 100);
}

#[tokio::test]
async fn uploads_reuse_the_connection_and_share_it_as_streams() {
    let sink = h3_sink().await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 200_000);
    let first = client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    assert_eq!(first.profile.as_ref().unwrap().protocol, "quic");
    let second = client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    let p = second.profile.clone().unwrap();
    assert!(p.socket_reused);
    assert_eq!(p.connect_start, p.fetch_start);
    assert_eq!(p.ssl_connection_end, p.fetch_start);
    let (v1, v2) = (verdict(&first), verdict(&second));
    assert_eq!(v1["connection"]["id"], v2["connection"]["id"]);
    assert_eq!(v2["connection"]["request"], 2);

    // Concurrent uploads: streams of the same connection.
    let tasks: Vec<_> = (0..8)
        .map(|_| client.upload_file(quic_options(sink.url("/upload"), &file)))
        .collect();
    for t in tasks {
        let res = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(verdict(&res)["connection"]["id"], v1["connection"]["id"]);
        assert_eq!(res.profile.unwrap().protocol, "quic");
    }
    assert_eq!(client.quic_connections(), 1);
}

#[tokio::test]
async fn abort_and_timeout_reset_the_stream_and_leave_the_connection_usable() {
    let sink = h3_sink().await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", 64 * 1024 * 1024);
    let small = make_file(dir.path(), "small.bin", 1000);
    // Open the connection first.
    client
        .upload_file(quic_options(sink.url("/upload"), &small))
        .await
        .unwrap();

    let task = client.upload_file(quic_options(sink.url("/upload"), &file));
    let handle = task.handle();
    task.on_progress_update(move |p| {
        if p.total_bytes_sent > 1024 * 1024 {
            handle.abort();
        }
    });
    let err = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Abort);
    assert_eq!(err.err_msg(), "uploadFile:fail abort");

    let slow =
        quic_options(sink.url("/upload?delay_ms=2000"), &small).timeout(Duration::from_millis(300));
    let err = client.upload_file(slow).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);

    // The server never saw either as a complete request; the connection still carries uploads.
    let res = client
        .upload_file(quic_options(sink.url("/upload"), &small))
        .await
        .unwrap();
    let p = res.profile.unwrap();
    assert_eq!(p.protocol, "quic");
    assert!(p.socket_reused);
    let stats = sink.stats();
    let big_complete = stats
        .records
        .iter()
        .any(|r| r.received_bytes >= 64 * 1024 * 1024 && r.body_received_ms.is_some());
    assert!(
        !big_complete,
        "the aborted body must not arrive as complete"
    );
}

#[tokio::test]
async fn server_status_and_response_headers_come_through() {
    let sink = h3_sink().await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.txt", 10);
    let res = client
        .upload_file(quic_options(sink.url("/upload?status=500"), &file))
        .await
        .unwrap();
    assert_eq!(res.status_code, 500);
    assert!(res.header.get("x-sink-connection").is_some());
    assert_eq!(res.profile.unwrap().protocol, "quic");
}

#[tokio::test]
async fn no_udp_listener_falls_back_to_tcp_and_the_origin_is_remembered() {
    // A TLS sink without its h3 endpoint: nothing answers on the UDP port.
    let sink = sink(true).await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 100_000);

    let res = tokio::time::timeout(
        Duration::from_secs(20),
        client.upload_file(quic_options(sink.url("/upload"), &file)),
    )
    .await
    .expect("no hang")
    .unwrap();
    let v = verdict(&res);
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
    let p = res.profile.unwrap();
    let ext = res.profile_extensions.unwrap();
    assert_eq!(p.protocol, "http1.1");
    assert!(
        ext.quic_fallback.contains("QUIC handshake"),
        "{}",
        ext.quic_fallback
    );
    // The TCP connection's own phases; the failed QUIC attempt lies between fetchStart and
    // connectStart.
    assert!(p.connect_start - p.fetch_start >= 250.0, "{p:?}");
    assert!(p.ssl_connection_start >= p.connect_start);
    // The race: nothing came back over UDP, so TCP started after QUIC's head start (no RTT
    // known yet: the 300 ms default, here also the ceiling) and won; the QUIC attempt was left
    // running.
    assert_eq!(ext.race_winner, "tcp");
    assert_eq!(ext.race_reason, "quic-no-answer");
    assert_eq!(ext.race_head_start_ms, 300.0);
    assert_eq!(ext.race_head_start_basis, "default");
    assert_eq!(ext.quic_attempt_outcome, "pending");
    assert_eq!(ext.quic_server_hello, 0.0);
    assert_eq!(ext.quic_attempt_end, 0.0);
    let tcp_after = ext.tcp_attempt_start - ext.quic_attempt_start;
    assert!(
        (300.0..400.0).contains(&tcp_after),
        "TCP started {tcp_after} ms after QUIC"
    );
    assert_eq!(ext.tcp_attempt_outcome, "connected");
    assert!(ext.tcp_connect_end >= ext.tcp_attempt_start && ext.tcp_tls_end >= ext.tcp_connect_end);
    assert_eq!(ext.tcp_tls_end, p.ssl_connection_end);

    // Remembered: the next upload goes straight to TCP, and says why; with enableHttp2 it is h2.
    let res = client
        .upload_file(quic_options(sink.url("/upload"), &file).enable_http2(true))
        .await
        .unwrap();
    let p = res.profile.unwrap();
    let ext = res.profile_extensions.unwrap();
    assert_eq!(p.protocol, "h2");
    assert!(
        ext.quic_fallback.contains("not tried again"),
        "{}",
        ext.quic_fallback
    );
    assert!(p.connect_start - p.fetch_start < 250.0, "{p:?}");
    assert_eq!(
        (ext.race_winner.as_str(), ext.race_reason.as_str()),
        ("tcp", "quic-broken-origin")
    );
    assert_eq!((ext.quic_attempt_start, ext.tcp_attempt_start), (0.0, 0.0));
}

#[tokio::test]
async fn quic_is_not_tried_for_plain_http() {
    let sink = sink(false).await;
    let client = Client::builder().no_proxy().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    let res = client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    let ext = res.profile_extensions.unwrap();
    assert_eq!(res.profile.unwrap().protocol, "http1.1");
    assert!(
        ext.quic_fallback.contains("https://"),
        "{}",
        ext.quic_fallback
    );
}

#[tokio::test]
async fn a_refused_certificate_over_quic_falls_back_and_fails_with_the_tls_reason() {
    let sink = h3_sink().await;
    // This client does not trust the sink's CA.
    let client = Client::builder()
        .no_proxy()
        .quic_fallback_after(Duration::from_millis(300))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    let err = client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{}", err.err_msg());
}

#[tokio::test]
async fn an_early_answer_with_stop_sending_is_the_result() {
    let sink = h3_sink().await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", 32 * 1024 * 1024);
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        client.upload_file(quic_options(sink.url("/upload?early=1&status=413"), &file)),
    )
    .await
    .expect("no hang")
    .unwrap();
    assert_eq!(res.status_code, 413);
    let p = res.profile.unwrap();
    assert_eq!(p.protocol, "quic");
    let ext = res.profile_extensions.unwrap();
    assert!(ext.early_response);
    assert_eq!(p.request_end, 0.0, "the body was never completed");
    assert!(ext.body_bytes_sent < 32 * 1024 * 1024);
}

#[tokio::test]
async fn a_connection_closed_by_the_server_fails_the_upload_with_the_reason() {
    let sink = h3_sink().await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 4 * 1024 * 1024);
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        client.upload_file(quic_options(sink.url("/upload?close=1"), &file)),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    eprintln!("closed by the server: {}", err.err_msg());
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed, "{}", err.err_msg());
    assert!(
        err.err_msg().contains("QUIC") || err.err_msg().contains("HTTP/3"),
        "{}",
        err.err_msg()
    );
    // The dead connection is not reused: the next upload makes a new one.
    let res = client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    let p = res.profile.unwrap();
    assert_eq!(p.protocol, "quic");
    assert!(!p.socket_reused);
}

#[tokio::test]
async fn uploads_over_the_server_stream_limit_wait_as_queue_time() {
    let sink = Sink::start(SinkConfig {
        tls: true,
        h3: true,
        h3_max_concurrent_streams: 2,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    // Open the connection, then six uploads that each hold a stream for 300 ms.
    client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| client.upload_file(quic_options(sink.url("/upload?delay_ms=300"), &file)))
        .collect();
    let mut waits = Vec::new();
    for t in tasks {
        let res = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
        let p = res.profile.unwrap();
        assert_eq!(p.protocol, "quic");
        assert!(p.socket_reused);
        assert_eq!(p.connect_start, p.fetch_start);
        waits.push(p.queue_end - p.queue_start);
    }
    waits.sort_by(f64::total_cmp);
    // Two at a time: two did not wait, the others waited about 300 and 600 ms.
    assert!(waits[1] < 100.0, "{waits:?}");
    assert!(waits[5] > 500.0, "{waits:?}");
    assert_eq!(client.quic_connections(), 1);
}

#[tokio::test]
async fn a_dropped_client_leaves_no_socket_or_connection_behind() {
    // It counts the process's descriptors: alone in a process, so that only its own count.
    if common::alone::ran_in_child("quic::a_dropped_client_leaves_no_socket_or_connection_behind") {
        return;
    }
    let sink = h3_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 50_000);
    let open_fds = || std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    // Warm up the runtime's threads and the blocking pool, then take the baseline.
    let client = quic_client(&sink);
    client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = open_fds();
    for _ in 0..3 {
        let client = quic_client(&sink);
        let tasks: Vec<_> = (0..10)
            .map(|_| client.upload_file(quic_options(sink.url("/upload"), &file)))
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().profile.unwrap().protocol, "quic");
        }
        drop(client);
    }
    // The connections close (H3_NO_ERROR) when the last sender goes; the endpoints with them.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while open_fds() > before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        open_fds() <= before,
        "descriptors {before} -> {}",
        open_fds()
    );
}

/// The race's figures of one upload, for the summaries the race tests print.
fn race_line(p: &uploadfile::Profile, ext: &uploadfile::ProfileExtensions) -> String {
    format!(
        "{} {} head start {} ms ({}), connect {:.2} ms",
        ext.race_winner,
        ext.race_reason,
        ext.race_head_start_ms,
        ext.race_head_start_basis,
        p.connect_end - p.connect_start
    )
}

/// Percentiles (0, 50, 90, 100) of `v`, for the printed summaries.
fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {:.2} / median {:.2} / p90 {:.2} / max {:.2} ms",
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

#[tokio::test]
async fn an_origin_that_answers_quic_wins_the_race_every_time() {
    // 50 uploads, each with a new client (no RTT known: the 300 ms default head start), then
    // 50 on one client with its connections closed before each (the race runs every time, with
    // the origin's RTT known: the head start's floor). QUIC must win all 100.
    let sink = h3_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10_000);
    let client_of = || {
        Client::builder()
            .no_proxy()
            .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
            .build()
            .unwrap()
    };
    let mut handshakes = Vec::new();
    let mut lines = Vec::new();
    let shared = client_of();
    let mut previous_rtt = 0.0_f64;
    for i in 0..100 {
        let fresh_client;
        let client = if i < 50 {
            fresh_client = client_of();
            &fresh_client
        } else {
            shared.close_idle_connections();
            &shared
        };
        let res = tokio::time::timeout(
            Duration::from_secs(20),
            client.upload_file(quic_options(sink.url("/upload"), &file).enable_http2(true)),
        )
        .await
        .expect("no hang")
        .unwrap();
        let (p, ext) = (res.profile.unwrap(), res.profile_extensions.unwrap());
        let line = race_line(&p, &ext);
        assert_eq!(
            p.protocol, "quic",
            "upload {i}: {line}; {}",
            ext.quic_fallback
        );
        assert_eq!(ext.race_winner, "quic", "upload {i}: {line}");
        assert!(
            ext.race_reason == "quic-first" || ext.race_reason == "quic-faster",
            "upload {i}: {line}"
        );
        assert_eq!(ext.quic_attempt_outcome, "connected", "upload {i}");
        assert!(!p.socket_reused, "upload {i}: the race ran");
        assert!(ext.quic_attempt_end >= p.connect_end, "upload {i}");
        assert!(ext.quic_server_hello > ext.quic_attempt_start);
        assert!(ext.quic_server_hello <= p.connect_end);
        if ext.race_reason == "quic-first" {
            assert_eq!(ext.tcp_attempt_start, 0.0, "upload {i}: TCP never started");
            assert_eq!(ext.tcp_attempt_outcome, "");
        } else {
            assert_eq!(ext.tcp_attempt_outcome, "closed", "upload {i}");
        }
        // The shared client's first upload knows no RTT yet either.
        let basis = if i <= 50 { "default" } else { "origin-rtt" };
        assert_eq!(ext.race_head_start_basis, basis, "upload {i}");
        // 1.5 times the RTT the previous upload measured to the origin, at least 25 ms (on
        // loopback, the floor); 300 ms when none is known.
        let head_start = if i <= 50 {
            300.0
        } else {
            (1.5 * previous_rtt).max(25.0)
        };
        assert!(
            (ext.race_head_start_ms - head_start).abs() < 0.01,
            "upload {i}: head start {} ms, previous RTT {previous_rtt} ms",
            ext.race_head_start_ms
        );
        previous_rtt = p.rtt;
        handshakes.push(p.connect_end - p.connect_start);
        lines.push(line);
    }
    let faster = lines.iter().filter(|l| l.contains("quic-faster")).count();
    eprintln!(
        "QUIC won 100 of 100 races ({} with TCP started alongside); QUIC handshakes: {}",
        faster,
        spread(handshakes)
    );
}

#[tokio::test]
async fn the_quic_cipher_suite_is_reported_as_over_tcp() {
    let sink = h3_sink().await;
    let client = quic_client(&sink);
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 1000);
    let over_quic = client
        .upload_file(quic_options(sink.url("/upload"), &file))
        .await
        .unwrap();
    let over_tcp = client
        .upload_file(UploadOptions::new(sink.url("/upload"), &file, "file"))
        .await
        .unwrap();
    let (q, t) = (
        over_quic.profile_extensions.unwrap(),
        over_tcp.profile_extensions.unwrap(),
    );
    assert_eq!(over_quic.profile.unwrap().protocol, "quic");
    assert!(q.cipher_suite.starts_with("TLS13_"), "{:?}", q.cipher_suite);
    // Both ends are rustls with the same provider: the same choice over TLS 1.3 on TCP.
    assert_eq!(t.tls_version, "TLSv1.3");
    assert_eq!(q.cipher_suite, t.cipher_suite);
    eprintln!("cipher suite over QUIC and over TCP: {}", q.cipher_suite);
}

/// A front for a sink listening on 127.0.0.1:PORT, on [::1] at the same port (QUIC goes to the
/// URL's port): TCP straight through, UDP with every datagram from the server held back by
/// `delay` (a QUIC server that is slow to answer). `None` (with the reason printed) where
/// [::1]:PORT cannot be had. Runs until the test's runtime ends.
async fn slow_udp_front(port: u16, delay: Duration) -> Option<()> {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use tokio::net::{TcpListener, TcpStream, UdpSocket};

    let front: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let upstream: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (tcp, udp) = match (TcpListener::bind(front).await, UdpSocket::bind(front).await) {
        (Ok(t), Ok(u)) => (t, Arc::new(u)),
        (t, u) => {
            eprintln!(
                "skipped: cannot listen on {front}: {:?} {:?}",
                t.err(),
                u.err()
            );
            return None;
        }
    };
    tokio::spawn(async move {
        while let Ok((mut client, _)) = tcp.accept().await {
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        let mut relays: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let relay = match relays.get(&from) {
                Some(r) => r.clone(),
                None => {
                    let Ok(r) = UdpSocket::bind("127.0.0.1:0").await else {
                        continue;
                    };
                    let r = Arc::new(r);
                    relays.insert(from, r.clone());
                    let (back, front_socket) = (r.clone(), udp.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok((n, _)) = back.recv_from(&mut buf).await {
                            let datagram = buf[..n].to_vec();
                            let front_socket = front_socket.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = front_socket.send_to(&datagram, from).await;
                            });
                        }
                    });
                    r
                }
            };
            let _ = relay.send_to(&buf[..n], upstream).await;
        }
    });
    Some(())
}

#[tokio::test]
async fn a_quic_handshake_that_completes_after_tcp_won_is_pooled_for_the_next_upload() {
    // The server's QUIC packets arrive 700 ms late: TCP, started after the 300 ms head start,
    // carries the first upload; the QUIC attempt goes on, completes, and carries the next. (700
    // ms leaves a loaded machine 400 ms to get TCP connected before QUIC's answer is in.)
    let sink = h3_sink().await;
    let port = sink.addr().port();
    if slow_udp_front(port, Duration::from_millis(700))
        .await
        .is_none()
    {
        return;
    }
    let client = Client::builder()
        .no_proxy()
        .add_root_certificates_pem(sink.ca_pem().unwrap().as_bytes())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10_000);
    let url = format!("https://[::1]:{port}/upload");

    let first = tokio::time::timeout(
        Duration::from_secs(20),
        client.upload_file(quic_options(url.clone(), &file)),
    )
    .await
    .expect("no hang")
    .unwrap();
    let (p, ext) = (first.profile.unwrap(), first.profile_extensions.unwrap());
    eprintln!(
        "first upload: {}; {}",
        race_line(&p, &ext),
        ext.quic_fallback
    );
    assert_eq!(p.protocol, "http1.1");
    assert_eq!(ext.race_winner, "tcp");
    assert_eq!(ext.race_reason, "quic-no-answer");
    assert_eq!(ext.race_head_start_ms, 300.0);
    assert_eq!(ext.quic_attempt_outcome, "pending");
    assert!(
        p.response_end - p.fetch_start < 690.0,
        "the upload did not wait for QUIC: {:.1} ms",
        p.response_end - p.fetch_start
    );

    // The attempt completes about 700 ms after it started, and is pooled.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.quic_connections() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.quic_connections(),
        1,
        "the late QUIC connection was pooled"
    );
    let second = tokio::time::timeout(
        Duration::from_secs(30),
        client.upload_file(quic_options(url, &file)),
    )
    .await
    .expect("no hang")
    .unwrap();
    let v = verdict(&second);
    let (p, ext) = (second.profile.unwrap(), second.profile_extensions.unwrap());
    assert_eq!(p.protocol, "quic", "{}", ext.quic_fallback);
    assert_eq!(
        (ext.race_winner.as_str(), ext.race_reason.as_str()),
        ("quic", "quic-pooled")
    );
    assert!(p.socket_reused);
    assert_eq!(ext.quic_fallback, "");
    assert_eq!(
        v["files"][0]["sha256"].as_str().unwrap(),
        sha256_file(&file)
    );
}
