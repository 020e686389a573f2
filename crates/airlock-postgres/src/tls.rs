//! TLS on both legs: the listener's leaf (from airlock's CA, naming the listener's address)
//! and airlock's client config toward the database per its `tls` setting.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use airlock_config::DbTls;
use bytes::{Buf, Bytes};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// PostgreSQL's ALPN protocol id (PostgreSQL 17). libpq 17 offers it on every TLS connection;
/// a direct TLS connection (`sslnegotiation=direct`) must negotiate it.
pub const ALPN: &[u8] = b"postgresql";

/// The first byte of a TLS handshake record. A startup packet's first byte is the top byte of
/// its length, which would mean a packet of hundreds of megabytes: the two cannot be confused.
pub const TLS_HANDSHAKE: u8 = 0x16;

/// The server config for the listener: airlock's CA signs a leaf for `host` (the address agents
/// dial). ALPN offers `postgresql` only, as PostgreSQL 17 does: a client offering ALPN without it
/// is refused in the handshake (no_application_protocol); one offering none goes on.
pub fn server_config(leaves: &airlock_tls::LeafCache, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let key = leaves.get(host).map_err(|e| e.to_string())?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(cfg))
}

/// A stream whose first bytes were already read (to tell direct TLS from a startup packet):
/// they are read again before the rest, so the TLS acceptor sees the whole ClientHello.
pub(crate) struct Prefixed<S> {
    pub(crate) head: Bytes,
    pub(crate) inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.head.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.head.len().min(buf.remaining());
        buf.put_slice(&self.head[..n]);
        self.head.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// `verify-full`: the web roots plus `roots` (the database's CA), host name checked.
/// `require`: encrypted, the certificate not checked (as libpq's sslmode=require).
pub fn client_config(mode: DbTls, roots: Arc<rustls::RootCertStore>) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let cfg = match mode {
        DbTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
        _ => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// The roots for `verify-full`: webpki's, plus the PEM certificates in `ca`.
pub fn roots(ca: Option<&[u8]>) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca {
        for c in airlock_tls::load_pem_certs(pem).map_err(|e| e.to_string())? {
            store.add(c).map_err(|e| e.to_string())?;
        }
    }
    Ok(store)
}

/// `tls = "require"`: any certificate, but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server certificate's hash for SCRAM's `tls-server-end-point` channel binding (RFC 5929
/// §4.1): the certificate (DER) hashed with its signature algorithm's hash, SHA-256 in place of
/// MD5 and SHA-1. `None` for an algorithm without one hash (Ed25519, RSA-PSS): PostgreSQL cannot
/// bind to such a certificate either (`be_tls_get_certificate_hash`), so the login goes unbound.
pub fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let hash = match parsed.signature_algorithm.algorithm.to_id_string().as_str() {
        // md5WithRSAEncryption, sha1WithRSAEncryption, ecdsa-with-SHA1: SHA-256 by the RFC.
        "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" => sha2::Sha256::digest(cert).to_vec(),
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => sha2::Sha224::digest(cert).to_vec(),
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => sha2::Sha256::digest(cert).to_vec(),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(cert).to_vec(),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(cert).to_vec(),
        _ => return None,
    };
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn the_end_point_hash_follows_the_signature_algorithm() {
        // airlock's own leaves are ECDSA P-256 with SHA-256: hashed with SHA-256 (RFC 5929 §4.1).
        let (ca, _) = airlock_tls::CertificateAuthority::generate("test").unwrap();
        let leaf = airlock_tls::LeafCache::new(Arc::new(ca), 2).get("127.0.0.1").unwrap();
        let der = leaf.cert[0].as_ref();
        assert_eq!(end_point_hash(der), Some(sha2::Sha256::digest(der).to_vec()));
        // Not a certificate: no hash, so the login is not bound (never a guessed one).
        assert_eq!(end_point_hash(b"not a certificate"), None);
    }

    #[test]
    fn a_direct_tls_opening_is_never_a_startup_packet() {
        // A startup packet starting 0x16 would declare ~369 MB, far above PostgreSQL's limit.
        let mut buf = bytes::BytesMut::from(&[TLS_HANDSHAKE, 3, 1, 0, 0xc8][..]);
        assert!(crate::codec::decode_startup(&mut buf).is_err());
    }
}
