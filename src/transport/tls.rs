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

/// Build the rustls client config shared by every TLS connection of a client.
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|e| {
            UploadError::new(ErrorKind::Config, format!("unusable root certificate: {e}"))
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UploadError::new(ErrorKind::Config, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
