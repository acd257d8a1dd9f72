//! TLS: the exposed CA verifies the server with a plain rustls client (webpki)
//! for "localhost", 127.0.0.1 and ::1; ALPN offers h2 and http/1.1.

use crate::common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use uploadfile_sink::{Sink, SinkConfig, SinkHandle};

async fn tls_sink(listen: SocketAddr) -> SinkHandle {
    Sink::start(SinkConfig {
        tls: true,
        listen,
        ..SinkConfig::default()
    })
    .await
    .expect("start tls sink")
}

fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn tls_connect(
    sink: &SinkHandle,
    name: ServerName<'static>,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(client_config(sink.ca_pem().unwrap(), alpn));
    let tcp = TcpStream::connect(sink.addr()).await?;
    tokio::time::timeout(WAIT, connector.connect(name, tcp)).await?
}

async fn upload_over(stream: TlsStream<TcpStream>) -> serde_json::Value {
    let file = data(200_000);
    let body = multipart(&[
        Part::Field("user", "test"),
        Part::File {
            field: "file",
            filename: "a.txt",
            content_type: "text/plain",
            data: &file,
        },
    ]);
    let ct = multipart_type();
    let mut conn = BufReader::new(stream);
    let mut req = head(
        "POST",
        "/upload",
        &[("Content-Type", &ct)],
        Some(body.len()),
    );
    req.extend_from_slice(&body);
    conn.get_mut().write_all(&req).await.unwrap();
    let res = read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v["files"][0]["sha256"], sha256_hex(&file).as_str());
    assert_eq!(v["receivedBytes"], body.len() as u64);
    v
}

#[tokio::test]
async fn handshake_for_localhost_verifies() {
    let sink = tls_sink(SinkConfig::default().listen).await;
    assert!(sink.is_tls());
    let port = sink.addr().port();
    assert_eq!(
        sink.url("/upload"),
        format!("https://localhost:{port}/upload")
    );
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tls_connect(&sink, name, &[b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let v = upload_over(stream).await;
    assert_eq!(v["protocol"], "HTTP/1.1");
    sink.shutdown().await;
}

#[tokio::test]
async fn handshake_for_ip_127_0_0_1_verifies() {
    let sink = tls_sink(SinkConfig::default().listen).await;
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    // No ALPN at all: HTTP/1.1.
    let stream = tls_connect(&sink, name, &[]).await.expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    upload_over(stream).await;
}

#[tokio::test]
async fn handshake_for_ipv6_loopback_verifies() {
    let listen = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    if std::net::TcpListener::bind(listen).is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let sink = tls_sink(listen).await;
    let name = ServerName::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST).into());
    let stream = tls_connect(&sink, name, &[b"http/1.1"])
        .await
        .expect("handshake");
    upload_over(stream).await;
}

#[tokio::test]
async fn alpn_prefers_h2() {
    let sink = tls_sink(SinkConfig::default().listen).await;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tls_connect(&sink, name, &[b"h2", b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn other_names_and_untrusted_clients_fail() {
    let sink = tls_sink(SinkConfig::default().listen).await;
    let name = ServerName::try_from("example.com").unwrap();
    assert!(tls_connect(&sink, name, &[]).await.is_err());

    // A client that does not trust the CA.
    let other = tls_sink(SinkConfig::default().listen).await;
    let connector = TlsConnector::from(client_config(other.ca_pem().unwrap(), &[]));
    let tcp = TcpStream::connect(sink.addr()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    assert!(connector.connect(name, tcp).await.is_err());

    // The sink survives failed handshakes.
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tls_connect(&sink, name, &[]).await.expect("handshake");
    upload_over(stream).await;
}

#[tokio::test]
async fn ca_pem_is_a_ca_and_can_be_written() {
    let sink = tls_sink(SinkConfig::default().listen).await;
    let pem = sink.ca_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let path = std::env::temp_dir().join(format!("uploadfile-sink-ca-{}.pem", sink.addr().port()));
    sink.write_ca_pem(&path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, pem);
}

/// A local non-loopback address, found through the route to a documentation
/// network (no packet is sent), if this machine has one.
fn local_non_loopback_ip() -> Option<IpAddr> {
    ["192.0.2.1:9", "198.51.100.1:9", "10.0.0.1:9", "8.8.8.8:53"]
        .iter()
        .find_map(|target| {
            let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            probe.connect(target).ok()?;
            let ip = probe.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
        .filter(|ip| std::net::TcpListener::bind((*ip, 0)).is_ok())
}

#[tokio::test]
async fn specific_listen_address_is_in_the_url_and_the_certificate() {
    let Some(ip) = local_non_loopback_ip() else {
        eprintln!("no non-loopback address here: skipped");
        return;
    };
    let sink = tls_sink(SocketAddr::new(ip, 0)).await;
    let port = sink.addr().port();
    assert_eq!(sink.url("/up"), format!("https://{ip}:{port}/up"));
    let stream = tls_connect(&sink, ServerName::IpAddress(ip.into()), &[])
        .await
        .expect("the certificate covers the listen address");
    upload_over(stream).await;
}

/// `SinkConfig::tls_certificate`: the sink serves the chain and key it was given (as
/// `uploadfile serve --tls --cert --key` does), and has no CA of its own to hand out.
#[tokio::test]
async fn serves_a_certificate_given_as_pem() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "a CA of the user's");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();

    let sink = Sink::start(SinkConfig {
        tls: true,
        tls_certificate: Some(uploadfile_sink::TlsCertificate {
            chain_pem: leaf_cert.pem().into_bytes(),
            key_pem: leaf_key.serialize_pem().into_bytes(),
        }),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    assert!(sink.is_tls());
    assert!(sink.ca_pem().is_none());
    assert!(sink
        .write_ca_pem(&std::env::temp_dir().join("never-written.pem"))
        .is_err());
    let connector = TlsConnector::from(client_config(&ca_cert.pem(), &[b"http/1.1"]));
    let tcp = TcpStream::connect(sink.addr()).await.unwrap();
    let stream = tokio::time::timeout(
        WAIT,
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .unwrap()
    .expect("the handshake verifies against the user's CA");
    let verdict = upload_over(stream).await;
    assert_eq!(verdict["fields"][0]["value"], "test");

    // A key that does not parse is an error at start, not a panic.
    let bad = Sink::start(SinkConfig {
        tls: true,
        tls_certificate: Some(uploadfile_sink::TlsCertificate {
            chain_pem: leaf_cert.pem().into_bytes(),
            key_pem: b"not a key".to_vec(),
        }),
        ..SinkConfig::default()
    })
    .await;
    assert!(bad.is_err());
}
