//! h2: prior knowledge on the plain listener and ALPN h2 over TLS, checked
//! with hyper's client.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

type Sender = http2::SendRequest<Full<Bytes>>;

async fn h2_over<S>(io: S) -> (Sender, JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .expect("h2 handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

async fn post(sender: &mut Sender, uri: &str, ct: &str, body: Vec<u8>) -> (u16, Bytes) {
    let req = Request::post(uri)
        .header("content-type", ct)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("in time")
        .expect("response");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

fn upload_body() -> (Vec<u8>, Vec<u8>) {
    let file = data(500_000);
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

async fn check_upload(sink: &SinkHandle, sender: &mut Sender, scheme_host: &str) {
    let (file, body) = upload_body();
    let uri = format!("{scheme_host}/upload?q=1");
    let (status, res) = post(sender, &uri, &multipart_type(), body.clone()).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&res).unwrap();
    assert_eq!(v["protocol"], "HTTP/2.0");
    assert_eq!(v["query"], "q=1");
    assert_eq!(v["fields"][1]["value"], "2");
    assert_eq!(v["files"][0]["sha256"], sha256_hex(&file).as_str());
    assert_eq!(v["receivedBytes"], body.len() as u64);
    assert_eq!(v["connection"]["request"], 1);

    let (_, res) = post(sender, &uri, "text/plain", b"second".to_vec()).await;
    let v2: serde_json::Value = serde_json::from_slice(&res).unwrap();
    assert_eq!(v2["connection"]["id"], v["connection"]["id"]);
    assert_eq!(v2["connection"]["request"], 2);
    assert_eq!(v2["bodySha256"], sha256_hex(b"second").as_str());
    assert_eq!(sink.stats().records[1].protocol, "HTTP/2.0");
}

#[tokio::test]
async fn h2_prior_knowledge() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let tcp = TcpStream::connect(sink.addr()).await.unwrap();
    let (mut sender, _task) = h2_over(tcp).await;
    check_upload(&sink, &mut sender, &format!("http://{}", sink.addr())).await;
}

#[tokio::test]
async fn h2_over_tls_alpn() {
    let sink = Sink::start(SinkConfig {
        tls: true,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(sink.ca_pem().unwrap().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(sink.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake");
    let (mut sender, _task) = h2_over(tls).await;
    let base = sink.url("");
    check_upload(&sink, &mut sender, base.trim_end_matches('/')).await;
}

#[tokio::test]
async fn h2_knobs_and_early_answer() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let tcp = TcpStream::connect(sink.addr()).await.unwrap();
    let (mut sender, _task) = h2_over(tcp).await;
    let base = format!("http://{}", sink.addr());
    let (status, body) = post(
        &mut sender,
        &format!("{base}/?status=503&body_size=70000"),
        "a/b",
        vec![1; 10],
    )
    .await;
    assert_eq!((status, body.len()), (503, 70_000));
    let (status, body) = post(
        &mut sender,
        &format!("{base}/?early=1&status=413"),
        "a/b",
        vec![1; 100_000],
    )
    .await;
    assert_eq!(status, 413);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["answeredBeforeBody"], true);
    // The h2 connection survives an early answer (only the stream ends).
    let (status, _) = post(&mut sender, &format!("{base}/"), "a/b", vec![1; 10]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn h2_close_idle_sends_goaway() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let tcp = TcpStream::connect(sink.addr()).await.unwrap();
    let (mut sender, task) = h2_over(tcp).await;
    let base = format!("http://{}", sink.addr());
    let (status, _) = post(&mut sender, &format!("{base}/"), "a/b", vec![1; 10]).await;
    assert_eq!(status, 200);
    sink.close_idle_connections();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("client connection ends")
        .unwrap();
}

#[tokio::test]
async fn no_task_outlives_the_handle() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let base = format!("http://{}", sink.addr());
    // An h2 stream stuck in a long delay (its task is spawned by hyper), and
    // an idle HTTP/1.1 connection.
    let tcp = TcpStream::connect(sink.addr()).await.unwrap();
    let (mut sender, client_task) = h2_over(tcp).await;
    let stuck = tokio::spawn(async move {
        let req = Request::post(format!("{base}/?delay_ms=60000"))
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap();
        let _ = sender.send_request(req).await;
    });
    let _idle = TcpStream::connect(sink.addr()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(metrics.num_alive_tasks() >= baseline + 5);
    drop(sink);
    let _ = tokio::time::timeout(WAIT, stuck)
        .await
        .expect("client request ends");
    let _ = tokio::time::timeout(WAIT, client_task)
        .await
        .expect("client connection ends");
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.num_alive_tasks() > baseline {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} tasks left",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
