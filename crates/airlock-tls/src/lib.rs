//! airlock's local certificate authority and the per-host leaf certificates the gateway
//! presents when it terminates an agent's TLS.
//!
//! The CA key signs leaves and nothing else; every leaf has its own fresh key, so a leaf key
//! leaking out of a handshake never lets anyone mint further certificates.

#![forbid(unsafe_code)]

mod ca;
mod host;
mod leaf;

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;

pub use ca::{CaFiles, CertificateAuthority};
pub use leaf::LeafCache;

/// Why a CA could not be created or loaded, or a leaf could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The host is neither a plausible DNS name nor an IP address (or is a wildcard).
    #[error("not a host a certificate can be issued for: {0:?}")]
    BadHost(String),
    /// PEM input holds no certificate.
    #[error("no certificate found in PEM input")]
    NoCertificate,
    /// PEM input is malformed.
    #[error("malformed PEM: {0}")]
    Pem(#[source] std::io::Error),
    /// The CA certificate is not valid X.509 DER.
    #[error("malformed CA certificate")]
    BadCertificate,
    /// The certificate is not a CA (no `basicConstraints CA:TRUE`).
    #[error("the certificate is not a CA certificate")]
    NotCa,
    /// The CA certificate's validity has ended.
    #[error("the CA certificate has expired")]
    CaExpired,
    /// The private key PEM could not be read (PKCS#8 is expected).
    #[error("unreadable private key: {0}")]
    BadKey(#[source] rcgen::Error),
    /// The private key is not the one the CA certificate was issued for.
    #[error("the private key does not match the CA certificate")]
    KeyMismatch,
    /// Generating a key or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[source] rcgen::Error),
    /// rustls refused the minted key or the system's randomness source failed.
    #[error("TLS library error: {0}")]
    Rustls(#[source] rustls::Error),
}

/// Serves one certificate, whatever the ClientHello says.
///
/// The gateway mints the certificate from the CONNECT authority before the handshake starts,
/// then checks SNI against that authority itself, so the resolver has nothing left to choose.
#[derive(Debug, Clone)]
pub struct FixedCert(pub Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Every certificate in a PEM file (an operator's `upstream_ca` bundle).
/// A file with no certificate at all is an error: it is almost surely the wrong file.
pub fn load_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_pem_certs_reads_bundles_and_rejects_empty_files() {
        let (a, _) = CertificateAuthority::generate("a").expect("ca");
        let (b, _) = CertificateAuthority::generate("b").expect("ca");
        let bundle = format!("# comment\n{}\n{}", a.cert_pem(), b.cert_pem());
        let certs = load_pem_certs(bundle.as_bytes()).expect("two certs");
        assert_eq!(certs, vec![a.cert_der().clone(), b.cert_der().clone()]);
        assert!(matches!(load_pem_certs(b""), Err(TlsError::NoCertificate)));
        assert!(matches!(load_pem_certs(b"just text"), Err(TlsError::NoCertificate)));
        let (_, files) = CertificateAuthority::generate("k").expect("ca");
        assert!(matches!(
            load_pem_certs(files.key_pem.as_bytes()),
            Err(TlsError::NoCertificate)
        ));
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(load_pem_certs(broken.as_bytes()), Err(TlsError::Pem(_))));
    }
}
