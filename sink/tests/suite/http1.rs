//! HTTP/1.1 behaviour, checked with a raw TcpStream client.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

async fn sink() -> SinkHandle {
    Sink::start(SinkConfig::default())
        .await
        .expect("start sink")
}

async fn connect(sink: &SinkHandle) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(sink.addr()).await.expect("connect"))
}

/// Sends one request with a body and reads the response.
async fn exchange(
    conn: &mut BufReader<TcpStream>,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut req = head("POST", target, headers, Some(body.len()));
    req.extend_from_slice(body);
    conn.get_mut().write_all(&req).await.unwrap();
    read_response(conn).await.expect("response")
}

#[tokio::test]
async fn multipart_fields_and_file_are_verified() {
    let sink = sink().await;
    let file = data(300_000);
    let body = multipart(&[
        Part::Field("user", "test"),
        Part::Field("note", "hello world"),
        Part::File {
            field: "file",
            filename: "a.txt",
            content_type: "text/plain",
            data: &file,
        },
    ]);
    let ct = multipart_type();
    let mut conn = connect(&sink).await;
    let res = exchange(
        &mut conn,
        "/upload?x=1",
        &[("Content-Type", &ct), ("X-Custom", "yes")],
        &body,
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let v = res.json();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/upload");
    assert_eq!(v["query"], "x=1");
    assert_eq!(v["contentType"], ct.as_str());
    assert_eq!(v["contentLength"], body.len() as u64);
    assert_eq!(v["receivedBytes"], body.len() as u64);
    assert_eq!(v["fields"][0]["name"], "user");
    assert_eq!(v["fields"][0]["value"], "test");
    assert_eq!(v["fields"][1]["name"], "note");
    assert_eq!(v["fields"][1]["value"], "hello world");
    assert_eq!(v["fields"].as_array().unwrap().len(), 2);
    let f = &v["files"][0];
    assert_eq!(f["field"], "file");
    assert_eq!(f["filename"], "a.txt");
    assert_eq!(f["contentType"], "text/plain");
    assert_eq!(f["size"], file.len() as u64);
    assert_eq!(f["sha256"], sha256_hex(&file).as_str());
    assert_eq!(v["headers"]["x-custom"], "yes");
    assert_eq!(v["connection"]["id"], 1);
    assert_eq!(v["connection"]["request"], 1);
    // The client's address as the sink accepted it.
    let client = conn.get_ref().local_addr().unwrap().to_string();
    assert_eq!(v["connection"]["peer"], client.as_str());
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert!(v.get("bodySha256").is_none());

    let stats = sink.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.requests, 1);
    assert_eq!(stats.body_bytes, body.len() as u64);
    let r = &stats.records[0];
    assert_eq!((r.connection_id, r.request_index), (1, 1));
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/upload"));
    assert_eq!(r.received_bytes, body.len() as u64);
    assert_eq!(r.status, Some(200));
    let body_ms = r.body_received_ms.expect("body time");
    let sent_ms = r.response_sent_ms.expect("sent time");
    assert!(r.head_received_ms <= body_ms && body_ms <= sent_ms);
    sink.shutdown().await;
}

#[tokio::test]
async fn chunked_multipart_body() {
    let sink = sink().await;
    let file = data(70_000);
    let body = multipart(&[
        Part::Field("user", "test"),
        Part::File {
            field: "file",
            filename: "b.bin",
            content_type: "application/octet-stream",
            data: &file,
        },
    ]);
    let ct = multipart_type();
    let mut req = head(
        "POST",
        "/up",
        &[("Content-Type", &ct), ("Transfer-Encoding", "chunked")],
        None,
    );
    for chunk in body.chunks(10_000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut conn = connect(&sink).await;
    conn.get_mut().write_all(&req).await.unwrap();
    let v = read_response(&mut conn).await.unwrap().json();
    assert_eq!(v["contentLength"], serde_json::Value::Null);
    assert_eq!(v["receivedBytes"], body.len() as u64);
    assert_eq!(v["files"][0]["sha256"], sha256_hex(&file).as_str());
    assert_eq!(v["files"][0]["filename"], "b.bin");
}

#[tokio::test]
async fn non_multipart_body_is_hashed_whole() {
    let sink = sink().await;
    let body = data(123_457);
    let mut conn = connect(&sink).await;
    let v = exchange(
        &mut conn,
        "/raw",
        &[("Content-Type", "application/octet-stream")],
        &body,
    )
    .await
    .json();
    assert_eq!(v["receivedBytes"], body.len() as u64);
    assert_eq!(v["bodySha256"], sha256_hex(&body).as_str());
    assert_eq!(v["files"].as_array().unwrap().len(), 0);
    assert_eq!(v["fields"].as_array().unwrap().len(), 0);

    // A GET without a body works too.
    conn.get_mut()
        .write_all(&head("GET", "/", &[], None))
        .await
        .unwrap();
    let v = read_response(&mut conn).await.unwrap().json();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["receivedBytes"], 0);
    assert_eq!(v["connection"]["request"], 2);
}

#[tokio::test]
async fn bad_multipart_is_400_json() {
    let sink = sink().await;
    let mut conn = connect(&sink).await;
    let ct = multipart_type();
    let res = exchange(
        &mut conn,
        "/",
        &[("Content-Type", &ct)],
        b"this is not multipart at all",
    )
    .await;
    assert_eq!(res.status, 400);
    assert!(res.json()["error"].as_str().unwrap().contains("multipart"));

    // Missing boundary.
    let res = exchange(
        &mut conn,
        "/",
        &[("Content-Type", "multipart/form-data")],
        b"x",
    )
    .await;
    assert_eq!(res.status, 400);
    assert!(res.json()["error"].is_string());

    // A truncated body (no closing boundary).
    let body = multipart(&[Part::Field("a", "b")]);
    let cut = &body[..body.len() - 10];
    let res = exchange(&mut conn, "/", &[("Content-Type", &ct)], cut).await;
    assert_eq!(res.status, 400);
    // The connection is still usable: the body was drained.
    let res = exchange(&mut conn, "/", &[], b"ok").await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn expect_100_continue() {
    let sink = sink().await;
    let body = multipart(&[Part::Field("user", "test")]);
    let ct = multipart_type();
    let mut conn = connect(&sink).await;
    let req = head(
        "POST",
        "/upload",
        &[("Content-Type", &ct), ("Expect", "100-continue")],
        Some(body.len()),
    );
    conn.get_mut().write_all(&req).await.unwrap();
    let (status, _) = tokio::time::timeout(WAIT, read_head(&mut conn))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 100);
    conn.get_mut().write_all(&body).await.unwrap();
    let res = read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["fields"][0]["value"], "test");
}

#[tokio::test]
async fn early_answer_does_not_send_100_continue() {
    let sink = sink().await;
    let mut conn = connect(&sink).await;
    let req = head(
        "POST",
        "/upload?early=1&status=413",
        &[("Expect", "100-continue")],
        Some(1 << 20),
    );
    conn.get_mut().write_all(&req).await.unwrap();
    let res = read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 413);
    assert_eq!(res.header("connection"), Some("close"));
    assert_eq!(res.json()["answeredBeforeBody"], true);
    expect_closed(&mut conn).await;
    let r = &sink.stats().records[0];
    assert_eq!(
        (r.status, r.received_bytes, r.body_received_ms),
        (Some(413), 0, None)
    );
}

#[tokio::test]
async fn early_answer_while_client_keeps_sending() {
    let sink = Sink::start(SinkConfig {
        answer_before_body: true,
        status: 413,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let stream = TcpStream::connect(sink.addr()).await.unwrap();
    let (rd, mut wr) = stream.into_split();
    let total = 64usize << 20;
    let writer = tokio::spawn(async move {
        wr.write_all(&head("POST", "/upload", &[], Some(total)))
            .await?;
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            wr.write_all(&chunk).await?;
            sent += chunk.len();
        }
        Ok::<_, std::io::Error>(sent)
    });
    let mut rd = BufReader::new(rd);
    let res = read_response(&mut rd)
        .await
        .expect("the early answer is readable");
    assert_eq!(res.status, 413);
    expect_closed(&mut rd).await;
    // The writer fails (reset / broken pipe) or ends; it must not hang.
    let _ = tokio::time::timeout(WAIT, writer)
        .await
        .expect("writer ends");
}

#[tokio::test]
async fn query_knobs_status_delay_body_size() {
    let sink = sink().await;
    let mut conn = connect(&sink).await;
    let started = Instant::now();
    let res = exchange(
        &mut conn,
        "/x?status=500&delay_ms=200&body_size=100000",
        &[],
        b"abc",
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(res.status, 500);
    assert_eq!(res.body.len(), 100_000);
    assert!(res.body.iter().all(|&b| b == b'x'));
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    let r = &sink.stats().records[0];
    assert_eq!(r.status, Some(500));
    let waited = r.response_sent_ms.unwrap() - r.body_received_ms.unwrap();
    assert!(waited >= 199.0, "{waited}");

    // Status alone, JSON body; and body_size=0.
    let res = exchange(&mut conn, "/x?status=201", &[], b"abc").await;
    assert_eq!(res.status, 201);
    assert_eq!(res.json()["receivedBytes"], 3);
    let res = exchange(&mut conn, "/x?body_size=0", &[], b"abc").await;
    assert_eq!((res.status, res.body.len()), (200, 0));

    // A bad knob value: 400 before the body (and the connection closes).
    let res = exchange(&mut conn, "/x?status=abc", &[], b"abc").await;
    assert_eq!(res.status, 400);
    assert!(res.json()["error"].as_str().unwrap().contains("status"));
}

#[tokio::test]
async fn close_early_drops_without_response() {
    let sink = sink().await;
    let mut conn = connect(&sink).await;
    conn.get_mut()
        .write_all(&head("POST", "/x?close=1", &[], Some(10)))
        .await
        .unwrap();
    expect_closed(&mut conn).await;

    let mut conn = connect(&sink).await;
    let mut req = head("POST", "/x?close=1&close_after=4096", &[], Some(10_000));
    req.extend_from_slice(&[b'z'; 5000]);
    conn.get_mut().write_all(&req).await.unwrap();
    expect_closed(&mut conn).await;
    let stats = sink.stats();
    assert_eq!(stats.records.len(), 2);
    assert!(stats.records.iter().all(|r| r.status.is_none()));
    assert!(stats.records[1].received_bytes >= 4096);
}

#[tokio::test]
async fn keepalive_0_closes_after_response() {
    let sink = sink().await;
    let mut conn = connect(&sink).await;
    let res = exchange(&mut conn, "/x?keepalive=0", &[], b"abc").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("connection"), Some("close"));
    expect_closed(&mut conn).await;
}

#[tokio::test]
async fn keep_alive_requests_share_a_connection() {
    let sink = sink().await;
    let mut a = connect(&sink).await;
    let v1 = exchange(&mut a, "/1", &[], b"one").await.json();
    let v2 = exchange(&mut a, "/2", &[], b"two").await.json();
    assert_eq!(v1["connection"]["id"], v2["connection"]["id"]);
    assert_eq!(v1["connection"]["request"], 1);
    assert_eq!(v2["connection"]["request"], 2);
    let mut b = connect(&sink).await;
    let v3 = exchange(&mut b, "/3", &[], b"three").await;
    assert_eq!(v3.header("x-sink-connection"), Some("2/1"));
    assert_eq!(sink.stats().connections_accepted, 2);
}

#[tokio::test]
async fn close_idle_connections_closes_only_idle_ones() {
    let sink = sink().await;
    let mut idle = connect(&sink).await;
    assert_eq!(exchange(&mut idle, "/", &[], b"a").await.status, 200);

    // A connection in the middle of a (delayed) request.
    let mut busy = connect(&sink).await;
    let mut req = head("POST", "/?delay_ms=1000", &[], Some(1));
    req.push(b'b');
    busy.get_mut().write_all(&req).await.unwrap();
    // Wait until the sink is serving it.
    let deadline = Instant::now() + WAIT;
    while sink.stats().requests < 2 {
        assert!(Instant::now() < deadline, "busy request not seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    sink.close_idle_connections();
    expect_closed(&mut idle).await;

    let res = read_response(&mut busy).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("connection"), None);
    // The busy connection is still usable afterwards.
    let res = exchange(&mut busy, "/", &[], b"c").await;
    assert_eq!(res.json()["connection"]["request"], 2);
}

#[tokio::test]
async fn discard_mode_counts_bytes() {
    let sink = Sink::start(SinkConfig {
        discard: true,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let mut conn = connect(&sink).await;
    let body = multipart(&[Part::File {
        field: "f",
        filename: "x",
        content_type: "a/b",
        data: &data(1 << 20),
    }]);
    let ct = multipart_type();
    let res = exchange(&mut conn, "/", &[("Content-Type", &ct)], &body).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        serde_json::json!({ "receivedBytes": body.len() })
    );
    let res = exchange(&mut conn, "/?status=202&delay_ms=50", &[], b"12345").await;
    assert_eq!(res.status, 202);
    assert_eq!(res.json()["receivedBytes"], 5);
    assert_eq!(sink.stats().body_bytes, body.len() as u64 + 5);
}

#[tokio::test]
async fn discard_knob_on_a_parsing_sink() {
    let sink = sink().await;
    let mut conn = connect(&sink).await;
    let ct = multipart_type();
    let res = exchange(
        &mut conn,
        "/?discard=1",
        &[("Content-Type", &ct)],
        b"garbage",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), serde_json::json!({ "receivedBytes": 7 }));
}

#[tokio::test]
async fn shutdown_and_drop_close_everything() {
    let sink = sink().await;
    let addr = sink.addr();
    let mut conn = connect(&sink).await;
    assert_eq!(exchange(&mut conn, "/", &[], b"a").await.status, 200);
    sink.shutdown().await;
    expect_closed(&mut conn).await;
    assert!(TcpStream::connect(addr).await.is_err());

    let sink = self::sink().await;
    let addr = sink.addr();
    let mut conn = connect(&sink).await;
    // A request stuck in a long delay is cut by the drop.
    let mut req = head("POST", "/?delay_ms=60000", &[], Some(1));
    req.push(b'a');
    conn.get_mut().write_all(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(sink);
    expect_closed(&mut conn).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn url_and_plain_handle() {
    let sink = sink().await;
    let port = sink.addr().port();
    assert!(!sink.is_tls());
    assert_eq!(sink.ca_pem(), None);
    assert_eq!(
        sink.url("/upload?a=1"),
        format!("http://127.0.0.1:{port}/upload?a=1")
    );
    assert_eq!(sink.url("x"), format!("http://127.0.0.1:{port}/x"));
    let dir = std::env::temp_dir().join(format!("sink-ca-{port}.pem"));
    assert!(sink.write_ca_pem(&dir).is_err());
    let mut conn = connect(&sink).await;
    conn.get_mut()
        .write_all(&head("GET", "/", &[], None))
        .await
        .unwrap();
    let res = read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 200);
}
