//! The TLS client configuration, and what a failed handshake is called.
//!
//! # Verification is always on
//!
//! Every TLS connection (HTTP/1.1, HTTP/2 by ALPN, HTTPDNS) verifies the server's certificate
//! chain and name against the webpki roots plus the roots added with
//! [`ClientBuilder::add_root_certificates_pem`](crate::ClientBuilder::add_root_certificates_pem).
//! There is no switch to turn it off. The one way around it is to supply a whole verifier of
//! one's own ([`ClientBuilder::dangerous_certificate_verifier`](crate::ClientBuilder::dangerous_certificate_verifier)),
//! which then decides alone, for every connection of that client: the name says what that
//! means.
//!
//! # Reasons
//!
//! A refused certificate fails the upload as `ssl handshake failed` ([`ErrorKind::Tls`]) before
//! any request byte is written, and the detail says why in words, distinct per cause (see
//! [`handshake_failure`]): `certificate expired on <date>`, `certificate not yet valid (valid
//! from <date>)`, `certificate not valid for host "<host>" (it is for <names>)`, `certificate
//! from an unknown issuer (self-signed, and not a trusted root)` or `(... not signed by a
//! trusted root)`, and so on. The default verifier is webpki's, wrapped only to tell a
//! self-signed certificate from one signed by an unknown CA (both are webpki's `UnknownIssuer`).
//!
//! ALPN offers `http/1.1`, or `h2` then `http/1.1` for `enableHttp2`, or `h3` (TLS 1.3 only)
//! over QUIC for `enableQuic`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

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
/// `http/1.1`): webpki's verifier over the webpki roots and `extra_roots`, or `verifier` when
/// the user supplied one.
pub(crate) fn client_config(
    extra_roots: &[CertificateDer<'static>],
    verifier: Option<&Arc<dyn ServerCertVerifier>>,
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    client_config_with_alpn(extra_roots, verifier, &[b"http/1.1"])
}

/// The same, offering `h2` first and `http/1.1` as the fallback (`enableHttp2`).
pub(crate) fn client_config_h2(
    extra_roots: &[CertificateDer<'static>],
    verifier: Option<&Arc<dyn ServerCertVerifier>>,
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    client_config_with_alpn(extra_roots, verifier, &[b"h2", b"http/1.1"])
}

/// The same trust for QUIC (`enableQuic`): TLS 1.3 only, as QUIC requires, ALPN `h3`. Early
/// data (0-RTT) stays off: an upload is not idempotent.
pub(crate) fn client_config_h3(
    extra_roots: &[CertificateDer<'static>],
    verifier: Option<&Arc<dyn ServerCertVerifier>>,
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    build_config(extra_roots, verifier, &[b"h3"], &[&rustls::version::TLS13])
}

fn client_config_with_alpn(
    extra_roots: &[CertificateDer<'static>],
    verifier: Option<&Arc<dyn ServerCertVerifier>>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    build_config(extra_roots, verifier, alpn, rustls::DEFAULT_VERSIONS)
}

fn build_config(
    extra_roots: &[CertificateDer<'static>],
    verifier: Option<&Arc<dyn ServerCertVerifier>>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, UploadError> {
    let provider = crypto_provider();
    let verifier: Arc<dyn ServerCertVerifier> = match verifier {
        Some(theirs) => theirs.clone(),
        None => Arc::new(DefaultVerifier::new(extra_roots, provider.clone())?),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| UploadError::new(ErrorKind::Config, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// webpki's verifier over the webpki roots and the client's extra roots, telling a self-signed
/// certificate apart from one signed by an unknown CA.
#[derive(Debug)]
struct DefaultVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

/// The marker error of a self-signed certificate that is not a trusted root.
#[derive(Debug)]
struct SelfSigned;

impl std::fmt::Display for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self-signed certificate that is not a trusted root")
    }
}

impl std::error::Error for SelfSigned {}

impl DefaultVerifier {
    fn new(
        extra_roots: &[CertificateDer<'static>],
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, UploadError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots.add(cert.clone()).map_err(|e| {
                UploadError::new(ErrorKind::Config, format!("unusable root certificate: {e}"))
            })?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| UploadError::new(ErrorKind::Config, e.to_string()))?;
        Ok(DefaultVerifier { webpki })
    }
}

impl ServerCertVerifier for DefaultVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                    if intermediates.is_empty() && is_self_issued(end_entity) =>
                {
                    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                        Arc::new(SelfSigned),
                    )))
                }
                e => e,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

/// The certificate names itself as its issuer (issuer and subject names are the same bytes).
/// Anything that does not parse as far as the subject is "no".
fn is_self_issued(cert: &[u8]) -> bool {
    fn self_issued(cert: &[u8]) -> Option<bool> {
        // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
        //   serialNumber, signature, issuer, validity, subject, ... }, ... }
        let (_, certificate, _) = der_element(cert)?;
        let (_, tbs, _) = der_element(certificate)?;
        let mut rest = tbs;
        let (tag, _, after) = der_element(rest)?;
        if tag == 0xa0 {
            rest = after; // the explicit version
        }
        let (_, _, rest) = der_element(rest)?; // serialNumber
        let (_, _, rest) = der_element(rest)?; // signature algorithm
        let issuer_len = rest.len() - der_element(rest)?.2.len();
        let issuer = &rest[..issuer_len];
        let (_, _, rest) = der_element(rest)?; // issuer
        let (_, _, rest) = der_element(rest)?; // validity
        let subject_len = rest.len() - der_element(rest)?.2.len();
        Some(issuer == &rest[..subject_len])
    }
    self_issued(cert).unwrap_or(false)
}

/// One DER element (single-byte tag, definite length): `(tag, contents, the bytes after it)`.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// What a failed handshake was, in words (the detail of an `ssl handshake failed` error).
///
/// A certificate the verifier refused names its problem, one distinct phrase per cause:
///
/// | rustls | detail |
/// |---|---|
/// | `Expired` | `certificate expired on 2021-01-01 00:00:00 UTC` |
/// | `NotValidYet` | `certificate not yet valid (valid from 2099-01-01 00:00:00 UTC)` |
/// | `NotValidForName` | `certificate not valid for host "a.example" (it is for b.example)` |
/// | `UnknownIssuer` | `certificate from an unknown issuer (not signed by a trusted root)` |
/// | (self-signed) | `certificate from an unknown issuer (self-signed, and not a trusted root)` |
/// | `BadSignature` | `certificate signature invalid` |
/// | `Revoked` | `certificate revoked` |
/// | `InvalidPurpose` | `certificate not valid for server authentication` |
///
/// Other failures: the server's alert, no certificate, no common protocol version, the
/// connection closing mid-handshake, or rustls' own words.
pub(crate) fn handshake_failure(host: &str, err: &std::io::Error) -> String {
    let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the connection closed during the handshake".to_string()
            }
            _ => err.to_string(),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => certificate_problem(host, cert),
        rustls::Error::AlertReceived(alert) => format!("the server sent the alert {alert:?}"),
        rustls::Error::NoCertificatesPresented => "the server presented no certificate".into(),
        rustls::Error::PeerIncompatible(why) => {
            format!("no TLS version or cipher in common ({why:?})")
        }
        other => other.to_string(),
    }
}

fn certificate_problem(host: &str, cert: &CertificateError) -> String {
    use CertificateError as C;
    match cert {
        C::Expired => "certificate expired".into(),
        C::ExpiredContext { not_after, .. } => {
            format!("certificate expired on {}", utc_date(not_after.as_secs()))
        }
        C::NotValidYet => "certificate not yet valid".into(),
        C::NotValidYetContext { not_before, .. } => format!(
            "certificate not yet valid (valid from {})",
            utc_date(not_before.as_secs())
        ),
        C::NotValidForName => format!("certificate not valid for host {host:?}"),
        C::NotValidForNameContext { presented, .. } if presented.is_empty() => {
            format!("certificate not valid for host {host:?} (it names no host)")
        }
        C::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
            format!(
                "certificate not valid for host {host:?} (it is for {})",
                names.join(", ")
            )
        }
        C::UnknownIssuer => {
            "certificate from an unknown issuer (not signed by a trusted root)".into()
        }
        C::Other(other) if other.0.downcast_ref::<SelfSigned>().is_some() => {
            "certificate from an unknown issuer (self-signed, and not a trusted root)".into()
        }
        C::BadSignature => "certificate signature invalid".into(),
        C::Revoked => "certificate revoked".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "certificate not valid for server authentication".into()
        }
        C::BadEncoding => "certificate malformed".into(),
        C::UnhandledCriticalExtension => "certificate has an unsupported critical extension".into(),
        C::ApplicationVerificationFailure => "certificate refused by the verifier".into(),
        other => format!("certificate refused: {other}"),
    }
}

/// A name as webpki presents it (`DnsName("a.example")`, `IpAddress(127.0.0.1)`), without the
/// wrapper; anything else as it is.
fn plain_name(presented: &str) -> &str {
    if let Some(dns) = presented
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
    {
        return dns;
    }
    presented
        .strip_prefix("IpAddress(")
        .and_then(|n| n.strip_suffix(')'))
        .unwrap_or(presented)
}

/// `YYYY-MM-DD hh:mm:ss UTC` of a Unix time (the proleptic Gregorian calendar).
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let in_day = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: rustls::Error) -> std::io::Error {
        // As tokio-rustls reports a handshake error.
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    fn cert(e: CertificateError) -> String {
        handshake_failure("a.example", &io(rustls::Error::InvalidCertificate(e)))
    }

    #[test]
    fn each_certificate_problem_has_its_own_words() {
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000));
        let day = |s| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        let cases = [
            (
                CertificateError::ExpiredContext {
                    time,
                    not_after: day(1_609_459_200),
                },
                "certificate expired on 2021-01-01 00:00:00 UTC",
            ),
            (CertificateError::Expired, "certificate expired"),
            (
                CertificateError::NotValidYetContext {
                    time,
                    not_before: day(4_070_908_800),
                },
                "certificate not yet valid (valid from 2099-01-01 00:00:00 UTC)",
            ),
            (CertificateError::NotValidYet, "certificate not yet valid"),
            (
                CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("a.example").unwrap(),
                    presented: vec![
                        "DnsName(\"b.example\")".into(),
                        "IpAddress(10.0.0.1)".into(),
                        "DirectoryName".into(),
                    ],
                },
                "certificate not valid for host \"a.example\" (it is for b.example, 10.0.0.1, DirectoryName)",
            ),
            (
                CertificateError::NotValidForName,
                "certificate not valid for host \"a.example\"",
            ),
            (
                CertificateError::UnknownIssuer,
                "certificate from an unknown issuer (not signed by a trusted root)",
            ),
            (
                CertificateError::Other(OtherError(Arc::new(SelfSigned))),
                "certificate from an unknown issuer (self-signed, and not a trusted root)",
            ),
            (CertificateError::BadSignature, "certificate signature invalid"),
            (CertificateError::Revoked, "certificate revoked"),
            (
                CertificateError::InvalidPurpose,
                "certificate not valid for server authentication",
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (error, words) in cases {
            assert_eq!(cert(error), words);
            assert!(seen.insert(words));
        }
    }

    #[test]
    fn other_handshake_failures() {
        assert_eq!(
            handshake_failure(
                "h",
                &io(rustls::Error::AlertReceived(
                    rustls::AlertDescription::HandshakeFailure
                ))
            ),
            "the server sent the alert HandshakeFailure"
        );
        assert_eq!(
            handshake_failure("h", &io(rustls::Error::NoCertificatesPresented)),
            "the server presented no certificate"
        );
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(
            handshake_failure("h", &eof),
            "the connection closed during the handshake"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_609_459_199), "2020-12-31 23:59:59 UTC");
        assert_eq!(utc_date(4_102_444_800), "2100-01-01 00:00:00 UTC");
    }

    /// A minimal certificate-shaped DER: SEQUENCE { SEQUENCE { [0] v3, serial, alg, issuer,
    /// validity, subject } }.
    fn fake_cert(issuer: &[u8], subject: &[u8], long_form: bool) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8], long_form: bool) -> Vec<u8> {
            let mut out = vec![tag];
            if long_form || body.len() >= 0x80 {
                out.push(0x82);
                out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            } else {
                out.push(body.len() as u8);
            }
            out.extend_from_slice(body);
            out
        }
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2], false), false);
        tbs.extend(tlv(0x02, &[1, 2, 3], false));
        tbs.extend(tlv(0x30, &tlv(0x06, &[1, 2], false), false));
        tbs.extend(tlv(0x30, issuer, false));
        tbs.extend(tlv(0x30, b"validity", false));
        tbs.extend(tlv(0x30, subject, false));
        tlv(0x30, &tlv(0x30, &tbs, long_form), long_form)
    }

    #[test]
    fn self_issued_certificates_are_recognised() {
        assert!(is_self_issued(&fake_cert(b"CN=me", b"CN=me", false)));
        assert!(is_self_issued(&fake_cert(b"CN=me", b"CN=me", true)));
        assert!(!is_self_issued(&fake_cert(b"CN=ca", b"CN=me", false)));
        let whole = fake_cert(b"CN=me", b"CN=me", true);
        for cut in 0..whole.len() {
            assert!(!is_self_issued(&whole[..cut]), "truncated at {cut}");
        }
        assert!(!is_self_issued(&[]));
        assert!(!is_self_issued(&[0x30, 0x85, 1, 1, 1, 1, 1]));
    }
}
