//! The TLS client configuration: rustls with the webpki roots plus the client's extra roots.
//!
//! Verification is always on: the only way to trust another server is to add its CA (PEM) to
//! the client. ALPN offers `http/1.1` (h2 joins when its driver does).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{ErrorKind, UploadError};

/// Parse every certificate in a PEM bundle; an empty or unreadable bundle is an error.
pub(crate) fn parse_pem_certificates(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, UploadError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs
        .map_err(|e| UploadError::new(ErrorKind::Config, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(UploadError::new(
            ErrorKind::Config,
            "no certificate found in the PEM data",
        ));
    }
    Ok(certs)
}

/// The crypto provider of every TLS config the client builds: the one place it is chosen.
///
/// aws-lc-rs when the cargo feature `aws-lc-rs` is on (even with `ring` on too), else ring
/// (feature `ring`). Measured on this project's machines: docs/performance.md, "Crypto provider
/// (issue 5)".
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("uploadfile needs a TLS crypto provider: enable the feature `ring` or `aws-lc-rs`");

/// Build the rustls client config shared by every TLS connection of a client (ALPN
/// `http/1.1`).
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    client_config_with_alpn(extra_roots, &[b"http/1.1"])
}

/// The same, offering `h2` first and `http/1.1` as the fallback (`enableHttp2`).
pub(crate) fn client_config_h2(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    client_config_with_alpn(extra_roots, &[b"h2", b"http/1.1"])
}

fn client_config_with_alpn(
    extra_roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|e| {
            UploadError::new(ErrorKind::Config, format!("unusable root certificate: {e}"))
        })?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| UploadError::new(ErrorKind::Config, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
