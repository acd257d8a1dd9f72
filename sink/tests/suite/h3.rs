//! HTTP/3: the sink's QUIC endpoint checked with an independent client
//! (quinn + h3 + h3-quinn, trusting the sink's CA).

use crate::common;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::task::JoinHandle;
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

/// Bound on every test as a whole.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Panics in the threads of this module's tests and in threads that run no
/// test (runtime workers, the sink's timer thread), the sink's own tasks
/// included (their join handles swallow them).
///
/// The test binary holds the sink's other test modules too, and a panic on
/// their threads is theirs to report. libtest runs each test on a thread
/// named after it (`module::function`, a path, which no runtime or sink
/// thread name is); the sink's tasks run on the test's own thread (these
/// tests' runtimes are current-thread) or on threads that run no test.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Whether a panic on the thread named `thread` is one of this module's.
fn counts(thread: Option<&str>) -> bool {
    match thread {
        Some(name) if name.contains("::") => name.starts_with("h3::"),
        _ => true,
    }
}

/// Runs a test body with a time limit, and fails it if any task panicked.
async fn bounded<F: Future>(f: F) -> F::Output {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if counts(std::thread::current().name()) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
    let out = tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("the test did not finish in time");
    // Give tasks that outlive the test body a moment to finish (or panic).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a task panicked (see above)"
    );
    out
}

async fn h3_sink(config: SinkConfig) -> SinkHandle {
    Sink::start(SinkConfig {
        tls: true,
        h3: true,
        ..config
    })
    .await
    .expect("sink starts")
}

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// One client QUIC connection with HTTP/3 on it.
struct Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: SendRequest,
    driver: JoinHandle<h3::error::ConnectionError>,
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the test client sends: what the sink's module docs recommend (64 KiB
/// datagrams on loopback, one datagram per send), unless the throughput
/// measurement asks otherwise.
#[derive(Clone, Copy)]
struct Tuning {
    mtu_upper_bound: u16,
    gso: bool,
}

const RECOMMENDED: Tuning = Tuning {
    mtu_upper_bound: 65527,
    gso: false,
};

fn client_config(ca_pem: &str, tuning: Tuning) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut transport = quinn::TransportConfig::default();
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(tuning.mtu_upper_bound);
    transport.mtu_discovery_config(Some(mtu));
    transport.enable_segmentation_offload(tuning.gso);
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    config
}

async fn connect(sink: &SinkHandle) -> Client {
    connect_tuned(sink, RECOMMENDED).await
}

async fn connect_tuned(sink: &SinkHandle, tuning: Tuning) -> Client {
    let addr = sink.h3_addr().expect("h3 is on");
    let socket = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let mut endpoint_config = quinn::EndpointConfig::default();
    endpoint_config.max_udp_payload_size(65527).unwrap();
    let mut endpoint =
        quinn::Endpoint::new(endpoint_config, None, socket, Arc::new(quinn::TokioRuntime)).unwrap();
    endpoint.set_default_client_config(client_config(sink.ca_pem().unwrap(), tuning));
    let conn = tokio::time::timeout(WAIT, endpoint.connect(addr, "localhost").unwrap())
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(
        conn.handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.protocol),
        Some(b"h3".to_vec())
    );
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .expect("h3 connection");
    let driver = tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await });
    Client {
        endpoint,
        conn,
        send,
        driver,
    }
}

impl Client {
    fn uri(&self, sink: &SinkHandle, path_and_query: &str) -> String {
        let base = sink.url("");
        format!("{}{path_and_query}", base.trim_end_matches('/'))
    }

    /// Sends a request with `body` (in 256 KiB pieces), then reads the whole
    /// answer.
    async fn request(
        &mut self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Answer, String> {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(())
            .unwrap();
        let mut stream = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let mut at = 0;
        while at < body.len() {
            let end = (at + (256 << 10)).min(body.len());
            stream
                .send_data(body.slice(at..end))
                .await
                .map_err(|e| e.to_string())?;
            at = end;
        }
        stream.finish().await.map_err(|e| e.to_string())?;
        read_answer(&mut stream).await
    }

    async fn post(&mut self, sink: &SinkHandle, path: &str, ct: &str, body: Vec<u8>) -> Answer {
        let uri = self.uri(sink, path);
        tokio::time::timeout(WAIT * 3, self.request("POST", &uri, ct, Bytes::from(body)))
            .await
            .expect("answer in time")
            .expect("answer")
    }
}

async fn read_answer<S>(stream: &mut h3::client::RequestStream<S, Bytes>) -> Result<Answer, String>
where
    S: h3::quic::RecvStream,
{
    let res = stream.recv_response().await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(Answer {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: Bytes::from(body),
    })
}

fn upload_body(file_len: usize) -> (Vec<u8>, Vec<u8>) {
    let file = data(file_len);
    let body = multipart(&[
        Part::Field("user", "test"),
        Part::Field("n", "2"),
        Part::File {
            field: "file",
            filename: "big.bin",
            content_type: "application/octet-stream",
            data: &file,
        },
    ]);
    (file, body)
}

#[tokio::test]
async fn h3_multipart_upload_is_verified() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        assert_eq!(sink.h3_addr().unwrap().port(), sink.addr().port());
        assert_eq!(sink.h3_addr().unwrap().ip(), sink.addr().ip());
        let mut client = connect(&sink).await;
        let (file, body) = upload_body(500_000);
        let before = now_ms_f64();
        let a = client
            .post(&sink, "/upload?q=1", &multipart_type(), body.clone())
            .await;
        assert_eq!(a.status, 200);
        let v = a.json();
        assert_eq!(v["protocol"], "HTTP/3");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/upload");
        assert_eq!(v["query"], "q=1");
        assert_eq!(v["fields"][0]["name"], "user");
        assert_eq!(v["fields"][0]["value"], "test");
        assert_eq!(v["fields"][1]["value"], "2");
        assert_eq!(v["files"][0]["filename"], "big.bin");
        assert_eq!(v["files"][0]["size"], file.len() as u64);
        assert_eq!(v["files"][0]["sha256"], sha256_hex(&file).as_str());
        assert_eq!(v["receivedBytes"], body.len() as u64);
        assert_eq!(v["contentLength"], body.len() as u64);
        assert_eq!(v["connection"]["request"], 1);
        let id = v["connection"]["id"].as_u64().unwrap();
        assert_eq!(
            a.header("x-sink-connection"),
            Some(format!("{id}/1").as_str())
        );
        assert_eq!(
            a.header("content-length"),
            Some(a.body.len().to_string().as_str())
        );
        // Server timing: the head, then the end of the body, both during the request.
        let head = v["serverTiming"]["headReceivedMs"].as_f64().unwrap();
        let end = v["serverTiming"]["bodyReceivedMs"].as_f64().unwrap();
        assert!(before <= head && head <= end && end <= now_ms_f64(), "{v}");

        let stats = sink.stats();
        assert_eq!(stats.records.len(), 1);
        let r = &stats.records[0];
        assert_eq!(r.protocol, "HTTP/3");
        assert_eq!((r.connection_id, r.request_index), (id, 1));
        assert_eq!(r.received_bytes, body.len() as u64);
        assert_eq!(r.status, Some(200));
        // The same moments as in the verdict (the JSON float may be a bit or
        // two off: serde_json's parser does not round-trip exactly, and a
        // bit is 0.24 us at this magnitude).
        let same = |a: f64, b: f64| (a - b).abs() < 1e-3;
        assert!(same(r.head_received_ms, head), "{r:?} {v}");
        assert!(same(r.body_received_ms.unwrap(), end), "{r:?} {v}");
        assert!(r.response_sent_ms.is_some());
        let t = stats.timing(id, 1).unwrap();
        let (head_at, end_at) = (t.head_parsed_at.unwrap(), t.body_end_at.unwrap());
        assert!(head_at <= end_at);
        assert!(same(t.body_end_ms.unwrap(), end), "{t:?} {v}");
        assert_eq!(t.first_byte_at, None, "no socket reads under QUIC");
        let c = sink
            .connection_timings()
            .into_iter()
            .find(|c| c.id == id)
            .unwrap();
        assert!(c.accepted <= c.tls_done.unwrap() && c.tls_done.unwrap() <= head_at);
        sink.shutdown().await;
    })
    .await
}

fn now_ms_f64() -> f64 {
    uploadfile_sink::now_ms()
}

#[tokio::test]
async fn h3_two_requests_share_the_connection() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let a = client
            .post(&sink, "/one", "text/plain", b"first".to_vec())
            .await;
        let b = client
            .post(&sink, "/two", "text/plain", b"second".to_vec())
            .await;
        let (va, vb) = (a.json(), b.json());
        assert_eq!(va["connection"]["id"], vb["connection"]["id"]);
        assert_eq!(va["connection"]["request"], 1);
        assert_eq!(vb["connection"]["request"], 2);
        assert_eq!(vb["bodySha256"], sha256_hex(b"second").as_str());
        let id = va["connection"]["id"].as_u64().unwrap();
        assert_eq!(
            b.header("x-sink-connection"),
            Some(format!("{id}/2").as_str())
        );
        let stats = sink.stats();
        assert_eq!(stats.connections_accepted, 1);
        assert_eq!(stats.records[1].request_index, 2);
        assert_eq!(stats.records[1].protocol, "HTTP/3");

        // Two at once on the same connection: two streams, indexes 3 and 4.
        let uri_a = client.uri(&sink, "/a");
        let uri_b = client.uri(&sink, "/b");
        let mut other = client.send.clone();
        let (x, y) = tokio::join!(
            client.request("POST", &uri_a, "a/b", Bytes::from(vec![1u8; 300_000])),
            async {
                let req = http::Request::post(uri_b).body(()).unwrap();
                let mut s = other.send_request(req).await.map_err(|e| e.to_string())?;
                s.send_data(Bytes::from_static(b"y"))
                    .await
                    .map_err(|e| e.to_string())?;
                s.finish().await.map_err(|e| e.to_string())?;
                read_answer(&mut s).await
            }
        );
        let mut indexes = vec![
            x.unwrap().json()["connection"]["request"].as_u64().unwrap(),
            y.unwrap().json()["connection"]["request"].as_u64().unwrap(),
        ];
        indexes.sort();
        assert_eq!(indexes, [3, 4]);
    })
    .await
}

#[tokio::test]
async fn h3_status_and_response_knobs() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let a = client
            .post(&sink, "/?status=500", "text/plain", b"x".to_vec())
            .await;
        assert_eq!(a.status, 500);
        assert_eq!(a.json()["protocol"], "HTTP/3");
        let a = client
            .post(&sink, "/?status=503&body_size=70000", "a/b", vec![1; 10])
            .await;
        assert_eq!((a.status, a.body.len()), (503, 70_000));
        assert!(a.body.iter().all(|&b| b == b'x'));
        // A bad knob: 400 without reading the body; the connection lives on.
        let a = client.post(&sink, "/?status=abc", "a/b", vec![1; 10]).await;
        assert_eq!(a.status, 400);
        assert!(a.json()["error"].as_str().unwrap().contains("status"));
        // delay_ms and trickle_ms.
        let started = Instant::now();
        let a = client
            .post(
                &sink,
                "/?delay_ms=150&trickle_ms=100&body_size=20",
                "a/b",
                vec![1; 10],
            )
            .await;
        assert_eq!(a.body.len(), 20);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        // A redirect.
        let a = client
            .post(&sink, "/?redirect=307&to=%2Felsewhere", "a/b", vec![1; 10])
            .await;
        assert_eq!(a.status, 307);
        assert_eq!(a.header("location"), Some("/elsewhere"));
        assert_eq!(sink.stats().redirects.len(), 1);
        let a = client.post(&sink, "/", "a/b", vec![1; 10]).await;
        assert_eq!(a.json()["connection"]["request"], 6);
    })
    .await
}

#[tokio::test]
async fn h3_discard_counts_only() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let (_, body) = upload_body(1_000_000);
        let a = client
            .post(&sink, "/?discard=1", &multipart_type(), body.clone())
            .await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.json(),
            serde_json::json!({ "receivedBytes": body.len() as u64 })
        );
    })
    .await
}

#[tokio::test]
async fn h3_early_answer_stops_the_upload_but_not_the_connection() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let uri = client.uri(&sink, "/?early=1&status=413");
        let req = http::Request::post(uri).body(()).unwrap();
        let mut stream = client.send.send_request(req).await.unwrap();
        // The answer comes without a body byte sent.
        let res = tokio::time::timeout(WAIT, stream.recv_response())
            .await
            .expect("early answer in time")
            .unwrap();
        assert_eq!(res.status(), 413);
        // The sink stopped reading: sending more fails soon (STOP_SENDING).
        let refused = tokio::time::timeout(WAIT, async {
            loop {
                if stream
                    .send_data(Bytes::from(vec![0u8; 64 << 10]))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
        .await;
        assert!(refused.is_ok(), "the upload was never stopped");
        let a = client.post(&sink, "/", "a/b", b"after".to_vec()).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["connection"]["request"], 2);
    })
    .await
}

#[tokio::test]
async fn h3_upload_reset_by_the_client_gets_no_answer() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let uri = client.uri(&sink, "/upload");
        let req = http::Request::post(uri)
            .header("content-type", multipart_type())
            .body(())
            .unwrap();
        let mut stream = client.send.send_request(req).await.unwrap();
        stream
            .send_data(Bytes::from(vec![b'-'; 10_000]))
            .await
            .unwrap();
        // Wait until the sink has read what was sent, then cancel.
        let deadline = Instant::now() + WAIT;
        while sink.stats().body_bytes < 10_000 {
            assert!(Instant::now() < deadline, "the sink read nothing");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
        let answer = tokio::time::timeout(WAIT, stream.recv_response())
            .await
            .expect("the sink gives up in time");
        assert!(answer.is_err(), "{answer:?}");
        let r = sink.stats().records[0].clone();
        assert_eq!((r.status, r.body_received_ms), (None, None), "{r:?}");
        assert_eq!(r.received_bytes, 10_000);
        // The connection is still good.
        let a = client.post(&sink, "/", "a/b", b"next".to_vec()).await;
        assert_eq!(a.json()["connection"]["request"], 2);
    })
    .await
}

#[tokio::test]
async fn h3_64_mib_upload_arrives_whole() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let (file, body) = upload_body(64 << 20);
        let started = Instant::now();
        let a = client
            .post(&sink, "/upload", &multipart_type(), body.clone())
            .await;
        let took = started.elapsed();
        let v = a.json();
        assert_eq!(v["files"][0]["size"], file.len() as u64);
        assert_eq!(v["files"][0]["sha256"], sha256_hex(&file).as_str());
        assert_eq!(v["receivedBytes"], body.len() as u64);
        eprintln!(
            "64 MiB over h3 in {took:?} ({:.0} MiB/s)",
            64.0 / took.as_secs_f64()
        );
    })
    .await
}

#[tokio::test]
async fn h3_close_knob_closes_the_connection() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let uri = client.uri(&sink, "/?close=1&close_after=1000");
        let res = tokio::time::timeout(
            WAIT,
            client.request("POST", &uri, "a/b", Bytes::from(vec![7u8; 100_000])),
        )
        .await
        .expect("ends in time");
        assert!(res.is_err(), "no answer expected: {res:?}");
        let reason = tokio::time::timeout(WAIT, client.conn.closed())
            .await
            .expect("closed in time");
        match reason {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, quinn::VarInt::from_u32(0x100));
            }
            other => panic!("unexpected close: {other:?}"),
        }
        let stats = sink.stats();
        assert_eq!(stats.records[0].status, None);
        assert!(stats.records[0].received_bytes >= 1000);
        // A new connection works.
        let mut again = connect(&sink).await;
        let a = again.post(&sink, "/", "a/b", b"x".to_vec()).await;
        assert_eq!(a.json()["connection"]["id"], 2);
    })
    .await
}

#[tokio::test]
async fn h3_close_idle_and_shutdown_end_connections() {
    bounded(async {
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let a = client.post(&sink, "/", "a/b", b"x".to_vec()).await;
        assert_eq!(a.status, 200);
        sink.close_idle_connections();
        tokio::time::timeout(WAIT, client.conn.closed())
            .await
            .expect("idle connection closed");
        let _ = tokio::time::timeout(WAIT, client.driver).await;

        let mut client = connect(&sink).await;
        // A request first: the handshake is confirmed, so the close is an
        // application close (before that QUIC sends a transport close).
        let a = client.post(&sink, "/", "a/b", b"x".to_vec()).await;
        assert_eq!(a.status, 200);
        sink.shutdown().await;
        let reason = tokio::time::timeout(WAIT, client.conn.closed())
            .await
            .expect("closed by the shutdown");
        assert!(
            matches!(reason, quinn::ConnectionError::ApplicationClosed(_)),
            "{reason:?}"
        );
        client.endpoint.wait_idle().await;
    })
    .await
}

#[tokio::test]
async fn h3_needs_tls_and_the_flag() {
    bounded(async {
        let plain = Sink::start(SinkConfig {
            h3: true,
            ..SinkConfig::default()
        })
        .await
        .unwrap();
        assert_eq!(plain.h3_addr(), None);
        let tls_only = Sink::start(SinkConfig {
            tls: true,
            ..SinkConfig::default()
        })
        .await
        .unwrap();
        assert_eq!(tls_only.h3_addr(), None);
        // TCP still serves HTTP/1.1 and h2 next to h3.
        let both = h3_sink(SinkConfig::default()).await;
        let url = both.url("/");
        assert!(url.starts_with("https://localhost:"), "{url}");
        // The UDP port of a fixed TCP port that is taken by someone else's UDP socket.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let taken = Sink::start(SinkConfig {
            tls: true,
            h3: true,
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            ..SinkConfig::default()
        })
        .await;
        match taken {
            // The TCP port was free (usual): the UDP bind must have failed.
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}"),
            Ok(_) => panic!("started although UDP port {port} is taken"),
        }
    })
    .await
}

#[tokio::test]
async fn no_h3_task_outlives_the_handle() {
    bounded(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let baseline = metrics.num_alive_tasks();
        let sink = h3_sink(SinkConfig::default()).await;
        let mut client = connect(&sink).await;
        let uri = client.uri(&sink, "/?delay_ms=60000");
        let mut send = client.send.clone();
        let stuck = tokio::spawn(async move {
            let req = http::Request::post(uri).body(()).unwrap();
            if let Ok(mut s) = send.send_request(req).await {
                let _ = s.finish().await;
                let _ = s.recv_response().await;
            }
        });
        let a = client.post(&sink, "/", "a/b", b"x".to_vec()).await;
        assert_eq!(a.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(sink);
        let _ = tokio::time::timeout(WAIT, stuck)
            .await
            .expect("request ends");
        let _ = tokio::time::timeout(WAIT, client.conn.closed())
            .await
            .expect("connection closed");
        let _ = tokio::time::timeout(WAIT, client.driver)
            .await
            .expect("client driver ends");
        drop(client.send);
        drop(client.conn);
        client.endpoint.close(quinn::VarInt::from_u32(0), b"");
        let _ = tokio::time::timeout(WAIT, client.endpoint.wait_idle()).await;
        drop(client.endpoint);
        let deadline = tokio::time::Instant::now() + WAIT;
        while metrics.num_alive_tasks() > baseline {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} tasks left (baseline {baseline})",
                metrics.num_alive_tasks()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Throughput of one bulk upload of `H3_BENCH_MIB` MiB (default 1024) to
/// `H3_BENCH_PATH` (default `/?discard=1`: the sink only counts; `/` hashes
/// every byte), then, with `H3_BENCH_DOWN_MIB`, of a download that long. The
/// client is tuned as recommended unless `H3_BENCH_CLIENT_MTU` (its MTU
/// discovery bound, e.g. 1452) or `H3_BENCH_CLIENT_GSO=1` say otherwise.
/// Run in release:
/// `cargo test --release -p uploadfile-sink --test suite -- --ignored --nocapture h3_throughput`.
/// What it measured is in the sink's `src/http3.rs` module docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand, in release"]
async fn h3_throughput() {
    bounded(throughput()).await
}

async fn throughput() {
    let mib: usize = env_number("H3_BENCH_MIB").unwrap_or(1024);
    let tuning = Tuning {
        mtu_upper_bound: env_number("H3_BENCH_CLIENT_MTU").unwrap_or(RECOMMENDED.mtu_upper_bound),
        gso: env_number::<u8>("H3_BENCH_CLIENT_GSO").unwrap_or(0) == 1,
    };
    let sink = h3_sink(SinkConfig::default()).await;
    let mut client = connect_tuned(&sink, tuning).await;
    let body = Bytes::from(vec![0x5au8; mib << 20]);
    let path = std::env::var("H3_BENCH_PATH").unwrap_or_else(|_| "/?discard=1".to_string());
    let uri = client.uri(&sink, &path);
    let started = Instant::now();
    let a = client
        .request("POST", &uri, "application/octet-stream", body)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["receivedBytes"], (mib << 20) as u64);
    if let Some(down) = env_number::<usize>("H3_BENCH_DOWN_MIB") {
        let uri = client.uri(&sink, &format!("/?discard=1&body_size={}", down << 20));
        let started = Instant::now();
        let a = client
            .request("POST", &uri, "a/b", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(a.body.len(), down << 20);
        println!(
            "download {down} MiB: {:.0} MiB/s",
            down as f64 / started.elapsed().as_secs_f64()
        );
    }
    let stats = client.conn.stats();
    println!(
        "h3 upload {mib} MiB in {:.3} s: {:.0} MiB/s; client: {} datagrams sent, {} lost packets, \
         path MTU {} ({} probes, {} lost, {} black holes), cwnd {}",
        took.as_secs_f64(),
        mib as f64 / took.as_secs_f64(),
        stats.udp_tx.datagrams,
        stats.path.lost_packets,
        stats.path.current_mtu,
        stats.path.sent_plpmtud_probes,
        stats.path.lost_plpmtud_probes,
        stats.path.black_holes_detected,
        stats.path.cwnd,
    );
}
