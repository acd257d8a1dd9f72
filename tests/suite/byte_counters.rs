//! The byte counters of `profileExtensions` and the connection's local address, on every
//! protocol (HTTP/1.1 plain and TLS, h2c, h2 over TLS, HTTP/3): header + body + framing bytes
//! add up to `sendBytesCount` / `receivedBytedCount` exactly, the body bytes are what the sink
//! counted and what `data` holds, and `localAddress:localPort` is the address the server saw.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use uploadfile::{Client, ClientBuilder, Profile, ProfileExtensions, UploadOptions, UploadSuccess};
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

/// The protocols the counters are checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Http1Plain,
    Http1Tls,
    H2c,
    H2Tls,
    Http3,
}

const EVERY_WIRE: [Wire; 5] = [
    Wire::Http1Plain,
    Wire::Http1Tls,
    Wire::H2c,
    Wire::H2Tls,
    Wire::Http3,
];

impl Wire {
    async fn sink(self) -> SinkHandle {
        self.sink_on(SinkConfig::default().listen)
            .await
            .expect("sink starts")
    }

    async fn sink_on(self, listen: SocketAddr) -> std::io::Result<SinkHandle> {
        Sink::start(SinkConfig {
            tls: !matches!(self, Wire::Http1Plain | Wire::H2c),
            h3: self == Wire::Http3,
            listen,
            ..SinkConfig::default()
        })
        .await
    }

    fn builder(self, sink: &SinkHandle) -> ClientBuilder {
        let mut b = Client::builder()
            .no_proxy()
            .http2_prior_knowledge(self == Wire::H2c)
            .quic_fallback_after(Duration::from_secs(5));
        if let Some(pem) = sink.ca_pem() {
            b = b.add_root_certificates_pem(pem.as_bytes());
        }
        b
    }

    fn client(self, sink: &SinkHandle) -> Client {
        self.builder(sink).build().expect("client builds")
    }

    fn options(self, url: String, file: &std::path::Path) -> UploadOptions {
        UploadOptions::new(url, file, "file")
            .form_data("user", "test")
            .enable_http2(matches!(self, Wire::H2c | Wire::H2Tls))
            .enable_quic(self == Wire::Http3)
    }

    /// The profile's `protocol` for this wire.
    fn protocol(self) -> &'static str {
        match self {
            Wire::Http1Plain | Wire::Http1Tls => "http1.1",
            Wire::H2c | Wire::H2Tls => "h2",
            Wire::Http3 => "quic",
        }
    }
}

/// Header + body + framing = the totals, both ways; the response body is `data`.
fn assert_adds_up(wire: Wire, res: &UploadSuccess) -> (Profile, ProfileExtensions) {
    let p = res.profile.clone().expect("profile");
    let e = res.profile_extensions.clone().expect("extensions");
    assert_eq!(p.protocol, wire.protocol(), "{wire:?}: {e:?}");
    assert_eq!(
        e.request_header_bytes_sent + e.body_bytes_sent + e.request_framing_bytes,
        p.send_bytes_count,
        "{wire:?}: request header {} + body {} + framing {} vs sendBytesCount",
        e.request_header_bytes_sent,
        e.body_bytes_sent,
        e.request_framing_bytes
    );
    assert_eq!(
        e.response_header_bytes_received
            + e.response_body_bytes_received
            + e.response_framing_bytes,
        p.received_byted_count,
        "{wire:?}: response header {} + body {} + framing {} vs receivedBytedCount",
        e.response_header_bytes_received,
        e.response_body_bytes_received,
        e.response_framing_bytes
    );
    assert_eq!(
        e.response_body_bytes_received,
        res.data.len() as u64,
        "{wire:?}: the response body is data"
    );
    eprintln!(
        "{wire:?}: sent {} = header {} + body {} + framing {}; received {} = header {} + body {} + \
         framing {}; local {}:{}",
        p.send_bytes_count,
        e.request_header_bytes_sent,
        e.body_bytes_sent,
        e.request_framing_bytes,
        p.received_byted_count,
        e.response_header_bytes_received,
        e.response_body_bytes_received,
        e.response_framing_bytes,
        e.local_address,
        e.local_port
    );
    assert!(e.request_header_bytes_sent > 0, "{wire:?}");
    assert!(e.response_header_bytes_received > 0, "{wire:?}");
    match wire {
        // HTTP/1.1 sends the body with Content-Length: no framing of its own.
        Wire::Http1Plain | Wire::Http1Tls => assert_eq!(e.request_framing_bytes, 0),
        // At least a frame header for the HEADERS and each DATA frame.
        Wire::H2c | Wire::H2Tls => {
            assert!(e.request_framing_bytes >= 2 * 9, "{wire:?}: {e:?}");
            assert!(e.response_framing_bytes >= 9, "{wire:?}: {e:?}");
        }
        Wire::Http3 => {
            assert!(e.request_framing_bytes >= 2 * 2, "{wire:?}: {e:?}");
            assert!(e.response_framing_bytes >= 2, "{wire:?}: {e:?}");
        }
    }
    (p, e)
}

/// `localAddress:localPort` as a socket address.
fn local(wire: Wire, e: &ProfileExtensions) -> SocketAddr {
    let ip: IpAddr = e
        .local_address
        .parse()
        .unwrap_or_else(|err| panic!("{wire:?}: localAddress {:?}: {err}", e.local_address));
    assert_ne!(e.local_port, 0, "{wire:?}");
    SocketAddr::new(ip, e.local_port)
}

/// The client's address as the sink saw it.
fn sink_saw(res: &UploadSuccess) -> SocketAddr {
    let v = verdict(res);
    v["connection"]["peer"]
        .as_str()
        .unwrap_or_else(|| panic!("no connection.peer in {v}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_every_protocol_the_counters_add_up_and_the_local_address_is_the_one_the_sink_saw() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 300_000 + 7);
    for wire in EVERY_WIRE {
        let sink = wire.sink().await;
        let client = wire.client(&sink);
        let upload = |query: &str| {
            let url = sink.url(&format!("/upload{query}"));
            tokio::time::timeout(
                Duration::from_secs(60),
                client.upload_file(wire.options(url, &file)),
            )
        };

        // A fresh connection: the sink's JSON verdict as the response.
        let res = upload("").await.expect("no hang").unwrap();
        let (p, e) = assert_adds_up(wire, &res);
        assert!(!p.socket_reused, "{wire:?}");
        let v = verdict(&res);
        assert_eq!(
            e.body_bytes_sent,
            v["receivedBytes"].as_u64().unwrap(),
            "{wire:?}: body bytes are what the sink counted"
        );
        assert_eq!(
            v["contentLength"].as_u64(),
            Some(e.body_bytes_sent),
            "{wire:?}"
        );
        let first = local(wire, &e);
        assert_eq!(first, sink_saw(&res), "{wire:?}: the local address");
        assert_eq!(
            (p.peer_ip.as_str(), p.port),
            (
                "127.0.0.1",
                if wire == Wire::Http3 {
                    sink.h3_addr().unwrap().port()
                } else {
                    sink.addr().port()
                }
            ),
            "{wire:?}"
        );

        // The same connection again, with a large response body (h2: the client's stream
        // WINDOW_UPDATEs are the request's control bytes).
        let res = upload("?body_size=200000").await.expect("no hang").unwrap();
        let (p, e) = assert_adds_up(wire, &res);
        assert!(p.socket_reused, "{wire:?}");
        assert_eq!(res.data.len(), 200_000);
        assert_eq!(e.response_body_bytes_received, 200_000, "{wire:?}");
        assert_eq!(local(wire, &e), first, "{wire:?}: a reused connection");
        if matches!(wire, Wire::H2c | Wire::H2Tls) {
            // DATA frames of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE): at least 13
            // frame headers on the way in.
            assert!(e.response_framing_bytes >= 13 * 9, "{wire:?}: {e:?}");
        }

        // And a verdict again on it: the body counted by the sink.
        let res = upload("").await.expect("no hang").unwrap();
        let (_, e) = assert_adds_up(wire, &res);
        assert_eq!(
            e.body_bytes_sent,
            verdict(&res)["receivedBytes"].as_u64().unwrap()
        );
        assert_eq!(local(wire, &e), sink_saw(&res), "{wire:?}");
        sink.shutdown().await;
    }
}

// On the current-thread runtime, as http2.rs's early-answer test: on a multi-threaded one an
// early answer over h2c fails now and then with "the stream closed while sending the body" (the
// body sender sees the stream closed before the response future sees the answer; 7 of 20 runs
// before this test existed). That race is the h2 exchange's, not the counters'.
#[tokio::test]
async fn an_early_answer_still_adds_up() {
    // The server answers 413 before reading the body: over h2 and HTTP/3 it also resets or
    // stops the stream, and whatever went out of the body before that is counted. Larger than
    // quinn's send window (16 MiB), as in quic.rs.
    const BIG: usize = 32 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "big.bin", BIG);
    for wire in EVERY_WIRE {
        let sink = wire.sink().await;
        // The body goes at once, without waiting for 100 Continue.
        let client = wire
            .builder(&sink)
            .expect_continue_threshold(None)
            .build()
            .unwrap();
        let url = sink.url("/upload?early=1&status=413");
        let res = tokio::time::timeout(
            Duration::from_secs(60),
            client.upload_file(wire.options(url, &file)),
        )
        .await
        .expect("no hang")
        .unwrap_or_else(|e| panic!("{wire:?}: {e:?}"));
        assert_eq!(res.status_code, 413, "{wire:?}");
        let (_, e) = assert_adds_up(wire, &res);
        assert!(e.early_response, "{wire:?}");
        assert!(e.body_bytes_sent < BIG as u64, "{wire:?}: {e:?}");
        sink.shutdown().await;
    }
}

#[tokio::test]
async fn a_chunked_response_after_100_continue_counts_heads_trailers_and_chunk_framing() {
    const INTERIM: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n";
    const BODY: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n";
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        // Answers `Expect: 100-continue` with the interim response.
        let head = read_request(&mut s, &mut buf, true).await.unwrap();
        s.write_all(&[HEAD, BODY].concat()).await.unwrap();
        (head, peer)
    });
    let dir = tempfile::tempdir().unwrap();
    // Over 1 MiB: the request asks for 100 Continue.
    let file = make_file(dir.path(), "a.bin", 1024 * 1024 + 1);
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .upload_file(UploadOptions::new(url, &file, "file")),
    )
    .await
    .expect("no hang")
    .unwrap();
    let (head, peer) = server.await.unwrap();
    assert_eq!(res.data, "hello world");
    let (p, e) = assert_adds_up(Wire::Http1Plain, &res);
    assert!(e.expect_continue);
    assert_eq!(e.first_interim_status, 100);
    // Both heads and the trailer field line.
    assert_eq!(
        e.response_header_bytes_received,
        (INTERIM.len() + HEAD.len() + b"X-Sum: 42\r\n".len()) as u64
    );
    assert_eq!(e.response_body_bytes_received, 11);
    // "5;ext=1\r\n", CRLF, "6\r\n", CRLF, "0\r\n", the final CRLF.
    assert_eq!(e.response_framing_bytes, 9 + 2 + 3 + 2 + 3 + 2);
    assert_eq!(
        p.received_byted_count,
        (INTERIM.len() + HEAD.len() + BODY.len()) as u64
    );
    // The request: its head as the server read it, and the body it announced.
    assert_eq!(e.request_header_bytes_sent, head.len() as u64);
    let announced: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .or_else(|| {
            head.lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
        })
        .expect("Content-Length")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(e.body_bytes_sent, announced);
    assert_eq!(local(Wire::Http1Plain, &e), peer);
}

#[tokio::test]
async fn over_ipv6_the_local_address_is_the_ipv6_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 20_000);
    for wire in [Wire::Http1Plain, Wire::H2Tls, Wire::Http3] {
        let sink = match wire.sink_on("[::1]:0".parse().unwrap()).await {
            Ok(sink) => sink,
            Err(e) => {
                eprintln!("skipped: no IPv6 loopback to listen on ({e})");
                return;
            }
        };
        // The sink's certificate covers ::1 (`localhost` may not resolve to it).
        let scheme = if sink.is_tls() { "https" } else { "http" };
        let url = format!("{scheme}://[::1]:{}/upload", sink.addr().port());
        let res = tokio::time::timeout(
            Duration::from_secs(30),
            wire.client(&sink).upload_file(wire.options(url, &file)),
        )
        .await
        .expect("no hang")
        .unwrap();
        let (p, e) = assert_adds_up(wire, &res);
        assert_eq!(p.peer_ip, "::1", "{wire:?}");
        let local = local(wire, &e);
        assert_eq!(local.ip(), "::1".parse::<IpAddr>().unwrap(), "{wire:?}");
        assert_eq!(local, sink_saw(&res), "{wire:?}");
        sink.shutdown().await;
    }
}
