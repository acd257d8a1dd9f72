//! A throw-away PKI made at start: a self-signed CA and a leaf certificate
//! for `localhost`, `127.0.0.1` and `::1`, signed by that CA.
//!
//! A CA that signs a separate leaf (rather than one self-signed certificate)
//! is what webpki accepts: it rejects a self-signed end-entity certificate
//! that is marked as a CA (`CaUsedAsEndEntity`), and a trust anchor that is
//! not a CA cannot be used either.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// The server's TLS configuration and the CA a client must trust.
pub(crate) struct TlsMaterial {
    /// PEM of the CA certificate (`None` for a certificate given by the user).
    pub ca_pem: Option<String>,
    /// rustls configuration of the TCP listener, offering ALPN `h2` (see
    /// [`generate`]'s `offer_h2`) and `http/1.1`.
    pub server_config: Arc<ServerConfig>,
    /// The leaf and the CA, for the QUIC configuration ([`quic_config`]).
    chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    key: PrivateKeyDer<'static>,
}

/// Names the leaf certificate is valid for.
pub(crate) const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn to_io(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("tls setup: {e}"))
}

/// Makes a fresh CA + leaf and the rustls server configuration using them.
/// The leaf is valid for [`SERVER_NAMES`] and, if given, `extra_ip` (the
/// specific address the sink listens on, e.g. inside a network namespace).
pub(crate) fn generate(extra_ip: Option<IpAddr>, offer_h2: bool) -> io::Result<TlsMaterial> {
    let ca_key = KeyPair::generate().map_err(to_io)?;
    let mut ca_params = CertificateParams::default();
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CommonName, "uploadfile-sink test CA");
    ca_dn.push(DnType::OrganizationName, "uploadfile-sink");
    ca_params.distinguished_name = ca_dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(to_io)?;

    let leaf_key = KeyPair::generate().map_err(to_io)?;
    let mut names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
    if let Some(ip) = extra_ip {
        names.push(ip.to_string());
    }
    let mut leaf_params = CertificateParams::new(names).map_err(to_io)?;
    let mut leaf_dn = DistinguishedName::new();
    leaf_dn.push(DnType::CommonName, "localhost");
    leaf_params.distinguished_name = leaf_dn;
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .map_err(to_io)?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    material(chain, key, Some(ca_cert.pem()), offer_h2)
}

/// The rustls configuration for a certificate chain and key given as PEM
/// ([`SinkConfig::tls_certificate`](crate::SinkConfig::tls_certificate)).
pub(crate) fn from_pem(
    cert: &crate::config::TlsCertificate,
    offer_h2: bool,
) -> io::Result<TlsMaterial> {
    use rustls::pki_types::pem::PemObject;
    let chain = CertificateDer::pem_slice_iter(&cert.chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| to_io(format!("certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(to_io("no certificate in the certificate PEM"));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&cert.key_pem).map_err(|e| to_io(format!("key PEM: {e}")))?;
    material(chain, key, None, offer_h2)
}

fn material(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_pem: Option<String>,
    offer_h2: bool,
) -> io::Result<TlsMaterial> {
    let (chain_for_quic, key_for_quic) = (chain.clone(), key.clone_key());
    // An explicit provider: the process-wide default is ambiguous when some
    // other crate in the build also enables aws-lc-rs.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(to_io)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(to_io)?;
    config.alpn_protocols = if offer_h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };

    Ok(TlsMaterial {
        ca_pem,
        server_config: Arc::new(config),
        chain: chain_for_quic,
        key: key_for_quic,
    })
}

/// The rustls configuration of the HTTP/3 endpoint: the same leaf and key as TCP, TLS 1.3 only
/// (QUIC has no other), ALPN `h3`, no 0-RTT (`max_early_data_size` stays 0: a replayed upload
/// would be counted twice).
pub(crate) fn quic_config(material: &TlsMaterial) -> io::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(to_io)?
        .with_no_client_auth()
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(to_io)?;
    config.alpn_protocols = vec![b"h3".to_vec()];
    Ok(config)
}
