//! TLS certificate verification: each bad certificate is refused with its own reason, before any
//! request byte is sent, over HTTP/1.1 and over the HTTP/2 (ALPN) configuration; a verifier the
//! user supplies replaces the built-in one, which otherwise is always on.
//!
//! Certificates are made here with rcgen (a throw-away CA per test, leaves with chosen names and
//! validity), served by a small tokio-rustls server on 127.0.0.1 that answers one HTTP/1.1
//! request per connection and records whether each handshake succeeded.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::make_file;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uploadfile::rustls;
use uploadfile::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use uploadfile::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use uploadfile::{Client, ErrorKind, UploadError, UploadOptions, UploadSuccess};

/// A certificate authority the test may or may not trust.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A server certificate and its key.
struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A leaf for `names`, valid from `from` to `until` (year, month, day), signed by `ca` or, with
/// none, by itself.
fn leaf(names: &[&str], from: (i32, u8, u8), until: (i32, u8, u8), ca: Option<&Ca>) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = dn("uploadfile test server");
    params.not_before = date_time_ymd(from.0, from.1, from.2);
    params.not_after = date_time_ymd(until.0, until.1, until.2);
    let cert = match ca {
        Some(ca) => params.signed_by(&key, &ca.cert, &ca.key).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Leaf {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// Valid now: from 2020 to 2090.
fn valid_leaf(names: &[&str], ca: Option<&Ca>) -> Leaf {
    leaf(names, (2020, 1, 1), (2090, 1, 1), ca)
}

/// What the server saw of one connection.
#[derive(Debug, Clone, PartialEq)]
enum Saw {
    /// The handshake failed (the client refused the certificate): no request could be read.
    HandshakeFailed,
    /// The handshake succeeded and this many request bytes arrived.
    Request(usize),
}

/// A TLS server (ALPN `http/1.1` only) answering `200 ok` to one request per connection.
struct TlsServer {
    url: String,
    origin: String,
    saw: Arc<Mutex<Vec<Saw>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsServer {
    async fn start(leaf: Leaf) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain, leaf.key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("https://{}", listener.local_addr().unwrap());
        let saw = Arc::new(Mutex::new(Vec::new()));
        let log = saw.clone();
        let task = tokio::spawn(async move {
            // Bounded: a test makes a handful of connections.
            for _ in 0..16 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let work = async {
                        match acceptor.accept(tcp).await {
                            Err(_) => log.lock().unwrap().push(Saw::HandshakeFailed),
                            Ok(mut tls) => {
                                let n = read_request(&mut tls).await;
                                log.lock().unwrap().push(Saw::Request(n));
                                let _ = tls
                                    .write_all(
                                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                                    )
                                    .await;
                                let _ = tls.shutdown().await;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
                });
            }
        });
        TlsServer {
            url: format!("{origin}/upload"),
            origin,
            saw,
            task,
        }
    }

    /// What the server saw, once it has seen `n` connections (waits at most 3 s).
    async fn saw(&self, n: usize) -> Vec<Saw> {
        for _ in 0..300 {
            let saw = self.saw.lock().unwrap().clone();
            if saw.len() >= n {
                return saw;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.saw.lock().unwrap().clone()
    }
}

/// Read one request (head and Content-Length body); the bytes read.
async fn read_request(s: &mut (impl AsyncReadExt + Unpin)) -> usize {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = common::find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf.len();
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf.len(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Upload a small file to `server` with `client` (HTTP/2 offered by ALPN or not); a hang fails.
async fn upload(
    client: &Client,
    server: &TlsServer,
    http2: bool,
) -> Result<UploadSuccess, UploadError> {
    let dir = tempfile::tempdir().unwrap();
    let file = make_file(dir.path(), "a.bin", 10_000);
    let task = client.upload_file(
        UploadOptions::new(&server.url, &file, "file")
            .enable_http2(http2)
            .timeout(Duration::from_secs(3)),
    );
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the upload ends within its timeout")
}

fn trusting(ca: &Ca) -> Client {
    Client::builder()
        .no_proxy()
        .add_root_certificates_pem(ca.pem())
        .build()
        .unwrap()
}

/// The upload fails as `ssl handshake failed: <reason> (<origin>)`, over HTTP/1.1 and with
/// HTTP/2 offered, and the server never got a request byte.
async fn assert_refused(client: &Client, server: &TlsServer, reason: &str) {
    for http2 in [false, true] {
        let err = upload(client, server, http2).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert_eq!(
            err.err_msg(),
            format!(
                "uploadFile:fail ssl handshake failed: {reason} ({})",
                server.origin
            ),
            "http2 {http2}"
        );
    }
    assert_eq!(
        server.saw(2).await,
        vec![Saw::HandshakeFailed, Saw::HandshakeFailed],
        "refused during the handshake: no request byte was sent"
    );
}

#[tokio::test]
async fn a_valid_certificate_from_a_trusted_ca_is_accepted() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(valid_leaf(&["127.0.0.1"], Some(&ca))).await;
    let client = trusting(&ca);
    for http2 in [false, true] {
        let res = upload(&client, &server, http2).await.unwrap();
        assert_eq!(res.data, "ok");
    }
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let ca = Ca::new("test CA");
    let server =
        TlsServer::start(leaf(&["127.0.0.1"], (2019, 1, 1), (2021, 1, 1), Some(&ca))).await;
    assert_refused(
        &trusting(&ca),
        &server,
        "certificate expired on 2021-01-01 00:00:00 UTC",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_refused() {
    let ca = Ca::new("test CA");
    let server =
        TlsServer::start(leaf(&["127.0.0.1"], (2099, 1, 1), (2100, 1, 1), Some(&ca))).await;
    assert_refused(
        &trusting(&ca),
        &server,
        "certificate not yet valid (valid from 2099-01-01 00:00:00 UTC)",
    )
    .await;
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused() {
    let server = TlsServer::start(valid_leaf(&["127.0.0.1"], None)).await;
    // The client trusts a CA, just not this certificate.
    assert_refused(
        &trusting(&Ca::new("another CA")),
        &server,
        "certificate from an unknown issuer (self-signed, and not a trusted root)",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let untrusted = Ca::new("untrusted CA");
    let server = TlsServer::start(valid_leaf(&["127.0.0.1"], Some(&untrusted))).await;
    assert_refused(
        &trusting(&Ca::new("trusted CA")),
        &server,
        "certificate from an unknown issuer (not signed by a trusted root)",
    )
    .await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(valid_leaf(&["other.example", "10.9.8.7"], Some(&ca))).await;
    assert_refused(
        &trusting(&ca),
        &server,
        "certificate not valid for host \"127.0.0.1\" (it is for other.example, 10.9.8.7)",
    )
    .await;
}

/// A verifier accepting exactly one certificate (pinning), checking handshake signatures
/// properly, and counting its calls.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    calls: AtomicUsize,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Pinned {
    fn new(cert: CertificateDer<'static>) -> Arc<Pinned> {
        Arc::new(Pinned {
            cert,
            calls: AtomicUsize::new(0),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A supplied verifier is used (for the HTTP/1.1 and the HTTP/2 ALPN configurations alike): the
/// pinned self-signed certificate is accepted; the default client still refuses it.
#[tokio::test]
async fn a_supplied_verifier_replaces_the_default_one_which_stays_on_otherwise() {
    let self_signed = valid_leaf(&["127.0.0.1"], None);
    let pinned = Pinned::new(self_signed.chain[0].clone());
    let server = TlsServer::start(self_signed).await;

    let default = Client::builder().no_proxy().build().unwrap();
    let err = upload(&default, &server, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(err.detail().contains("self-signed"), "{err}");

    let client = Client::builder()
        .no_proxy()
        .dangerous_certificate_verifier(pinned.clone())
        .build()
        .unwrap();
    for http2 in [false, true] {
        let res = upload(&client, &server, http2)
            .await
            .unwrap_or_else(|e| panic!("http2 {http2}: {e}"));
        assert_eq!(res.data, "ok");
    }
    assert_eq!(
        pinned.calls.load(Ordering::SeqCst),
        2,
        "one handshake per upload, each verified by the supplied verifier"
    );
}

/// The supplied verifier decides alone: a certificate the built-in verification would accept
/// (from a trusted CA) is refused when the supplied verifier refuses it.
#[tokio::test]
async fn a_supplied_verifier_decides_alone() {
    let ca = Ca::new("test CA");
    let server = TlsServer::start(valid_leaf(&["127.0.0.1"], Some(&ca))).await;
    let other = valid_leaf(&["127.0.0.1"], None);
    let client = Client::builder()
        .no_proxy()
        .add_root_certificates_pem(ca.pem())
        .dangerous_certificate_verifier(Pinned::new(other.chain[0].clone()))
        .build()
        .unwrap();
    assert_refused(&client, &server, "certificate refused by the verifier").await;
}
