//! Trickled responses, redirects, the HTTPDNS endpoint and IPv6 listening,
//! checked with a raw TcpStream client.

use crate::common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uploadfile_sink::{RedirectRecord, Sink, SinkConfig, SinkHandle};

async fn connect(sink: &SinkHandle) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(sink.addr()).await.expect("connect"))
}

async fn exchange(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let len = (method != "GET").then_some(body.len());
    let mut req = head(method, target, headers, len);
    req.extend_from_slice(body);
    conn.get_mut().write_all(&req).await.unwrap();
    read_response(conn).await.expect("response")
}

/// Sends `req` and reads the response raw, stamping every read: the body,
/// and when its first and last bytes arrived.
async fn trickled(stream: &mut TcpStream, req: &[u8]) -> (Vec<u8>, Instant, Instant, Instant) {
    let sent = Instant::now();
    stream.write_all(req).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut stamps: Vec<(usize, Instant)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "EOF");
        buf.extend_from_slice(&chunk[..n]);
        stamps.push((buf.len(), Instant::now()));
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("content-length");
        let body_start = end + 4;
        if buf.len() < body_start + len {
            continue;
        }
        // The read that returned the first body byte, and the last one.
        let first = stamps
            .iter()
            .find(|(upto, _)| *upto > body_start)
            .unwrap()
            .1;
        let last = stamps.last().unwrap().1;
        return (buf[body_start..].to_vec(), sent, first, last);
    }
}

#[tokio::test]
async fn trickled_padding_is_spread_over_n_ms() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
    let req = head("GET", "/?trickle_ms=500&body_size=100000", &[], None);
    let (body, sent, first, last) = trickled(&mut stream, &req).await;
    assert_eq!(body.len(), 100_000);
    assert!(body.iter().all(|&b| b == b'x'));
    // The first piece comes with the head, at once; the last at ~500 ms.
    assert!(
        first - sent < Duration::from_millis(100),
        "{:?}",
        first - sent
    );
    let spread = last - first;
    assert!(spread >= Duration::from_millis(400), "{spread:?}");
    assert!(spread < Duration::from_millis(1500), "{spread:?}");

    // The response's written timestamps span the trickle as well.
    let deadline = Instant::now() + WAIT;
    let t = loop {
        let t = sink.stats().timings[0].clone();
        if t.response_end_written_at.is_some() {
            break t;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let written = t.response_end_written_at.unwrap() - t.response_head_written_at.unwrap();
    assert!(written >= Duration::from_millis(490), "{written:?}");

    // The connection is reusable afterwards.
    let req = head("GET", "/again", &[], None);
    let (body, ..) = trickled(&mut stream, &req).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["connection"]["request"], 2);
}

#[tokio::test]
async fn trickled_json_verdict() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
    let mut req = head("POST", "/up?trickle_ms=200", &[], Some(5000));
    req.extend_from_slice(&data(5000));
    let (body, _, first, last) = trickled(&mut stream, &req).await;
    assert!(
        last - first >= Duration::from_millis(160),
        "{:?}",
        last - first
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["receivedBytes"], 5000);
    assert_eq!(v["query"], "trickle_ms=200");
}

#[tokio::test]
async fn redirects_keep_the_connection_reusable() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let mut conn = connect(&sink).await;
    let body = data(200_000);
    let to = "http%3A%2F%2Fexample.test%3A8080%2Fnext%3Fa%3D1%26b%3D2";
    let res = exchange(
        &mut conn,
        "POST",
        &format!("/up?redirect=307&to={to}"),
        &[("Content-Type", "application/octet-stream")],
        &body,
    )
    .await;
    assert_eq!(res.status, 307);
    assert_eq!(
        res.header("location"),
        Some("http://example.test:8080/next?a=1&b=2")
    );
    assert_eq!(res.header("connection"), None);
    assert!(!res.body.is_empty() && res.body.len() < 200);

    // Same connection: the body was read and discarded.
    let res = exchange(
        &mut conn,
        "POST",
        "/next?redirect=301&to=%2Fthird",
        &[],
        b"x",
    )
    .await;
    assert_eq!(res.status, 301);
    assert_eq!(res.header("location"), Some("/third"));
    assert_eq!(res.header("x-sink-connection"), Some("1/2"));
    let res = exchange(&mut conn, "POST", "/third", &[], b"done").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["connection"]["request"], 3);

    for code in [302, 303, 308] {
        let target = format!("/?redirect={code}&to=relative%2Fpath&delay_ms=10");
        let res = exchange(&mut conn, "GET", &target, &[], b"").await;
        assert_eq!(res.status, code);
        assert_eq!(res.header("location"), Some("relative/path"));
    }

    let stats = sink.stats();
    assert_eq!(stats.redirects.len(), 5);
    assert_eq!(
        stats.redirects[0],
        RedirectRecord {
            connection_id: 1,
            request_index: 1,
            status: 307,
            location: "http://example.test:8080/next?a=1&b=2".into(),
        }
    );
    let r = &stats.records[0];
    assert_eq!((r.status, r.received_bytes), (Some(307), 200_000));
    assert!(r.body_received_ms.is_some());
    assert_eq!(stats.body_bytes, 200_000 + 1 + 4);

    // Bad redirects are refused (a bad code or a missing `to` before the
    // body, a location that cannot be a header value after it).
    for bad in [
        "/?redirect=300&to=%2Fx",
        "/?redirect=302",
        "/?redirect=302&to=%0A",
    ] {
        let mut conn = connect(&sink).await;
        let res = exchange(&mut conn, "POST", bad, &[], b"abc").await;
        assert_eq!(res.status, 400, "{bad}");
    }
    assert_eq!(sink.stats().redirects.len(), 5);

    // With early=1 the redirect is answered before the body, then closed.
    let mut conn = connect(&sink).await;
    let req = head("POST", "/?redirect=307&to=%2Fy&early=1", &[], Some(1 << 20));
    conn.get_mut().write_all(&req).await.unwrap();
    let res = read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 307);
    assert_eq!(res.header("location"), Some("/y"));
    assert_eq!(res.header("connection"), Some("close"));
    expect_closed(&mut conn).await;
}

fn dns_sink_config() -> SinkConfig {
    let mut hosts = HashMap::new();
    hosts.insert(
        "a.test".to_string(),
        vec![
            "1.2.3.4".parse::<IpAddr>().unwrap(),
            "::1".parse::<IpAddr>().unwrap(),
        ],
    );
    hosts.insert("empty.test".to_string(), vec![]);
    SinkConfig {
        httpdns: Some(hosts),
        ..SinkConfig::default()
    }
}

#[tokio::test]
async fn httpdns_endpoint() {
    let sink = Sink::start(dns_sink_config()).await.unwrap();
    let mut conn = connect(&sink).await;
    let res = exchange(&mut conn, "GET", "/d?dn=a.test", &[], b"").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/plain"));
    assert_eq!(res.body, b"1.2.3.4;::1");
    // Case and a trailing dot do not matter; the client may put its own
    // parameters first.
    let res = exchange(&mut conn, "GET", "/d?x=1&dn=A.Test.", &[], b"").await;
    assert_eq!(res.body, b"1.2.3.4;::1");
    // Unknown hosts (and hosts without addresses): 200 with an empty body.
    for dn in ["b.test", "empty.test"] {
        let res = exchange(&mut conn, "GET", &format!("/d?dn={dn}"), &[], b"").await;
        assert_eq!((res.status, res.body.len()), (200, 0), "{dn}");
    }
    // delay_ms is honoured.
    let started = Instant::now();
    let res = exchange(&mut conn, "GET", "/d?delay_ms=200&dn=a.test", &[], b"").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(res.body, b"1.2.3.4;::1");
    // No dn: a 400.
    let res = exchange(&mut conn, "GET", "/d", &[], b"").await;
    assert_eq!(res.status, 400);

    // Uploads still work on the same sink and connection, even to /d.
    let file = data(50_000);
    let body = multipart(&[Part::File {
        field: "file",
        filename: "f.bin",
        content_type: "application/octet-stream",
        data: &file,
    }]);
    let ct = multipart_type();
    for path in ["/upload", "/d?dn=a.test"] {
        let res = exchange(&mut conn, "POST", path, &[("Content-Type", &ct)], &body).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["files"][0]["sha256"], sha256_hex(&file).as_str());
    }
    let stats = sink.stats();
    assert_eq!(stats.requests, 8);
    assert_eq!(stats.records[0].path, "/d");
    assert_eq!(stats.records[0].status, Some(200));

    // Without the map, /d is an ordinary path.
    let plain = Sink::start(SinkConfig::default()).await.unwrap();
    let mut conn = connect(&plain).await;
    let res = exchange(&mut conn, "GET", "/d?dn=a.test", &[], b"").await;
    assert_eq!(res.json()["path"], "/d");
}

#[tokio::test]
async fn listens_on_ipv6_loopback() {
    let listen = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    if std::net::TcpListener::bind(listen).is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let sink = Sink::start(SinkConfig {
        listen,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let port = sink.addr().port();
    assert!(sink.addr().is_ipv6());
    assert_eq!(sink.url("/up?a=1"), format!("http://[::1]:{port}/up?a=1"));
    let mut conn = connect(&sink).await;
    let res = exchange(&mut conn, "POST", "/up", &[], b"over v6").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["receivedBytes"], 7);
    let t = &sink.stats().timings[0];
    assert!(t.first_byte_at.is_some() && t.body_end_at.is_some());
}

#[tokio::test]
async fn listens_on_any_address() {
    let sink = Sink::start(SinkConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let port = sink.addr().port();
    assert_eq!(sink.url("/x"), format!("http://127.0.0.1:{port}/x"));
    let mut conn = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    assert_eq!(
        exchange(&mut conn, "POST", "/x", &[], b"a").await.status,
        200
    );

    if std::net::TcpListener::bind("[::]:0").is_ok() {
        let sink = Sink::start(SinkConfig {
            listen: "[::]:0".parse().unwrap(),
            ..SinkConfig::default()
        })
        .await
        .unwrap();
        let port = sink.addr().port();
        assert_eq!(sink.url("/x"), format!("http://[::1]:{port}/x"));
        if TcpStream::connect(("::1", port)).await.is_ok() {
            let mut conn = BufReader::new(TcpStream::connect(("::1", port)).await.unwrap());
            assert_eq!(
                exchange(&mut conn, "POST", "/x", &[], b"a").await.status,
                200
            );
        }
    }
}
