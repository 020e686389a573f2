//! The local CA: generated once, stored by the operator, loaded at start.

use std::fmt;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::TlsError;
use crate::host::Host;

/// Subject CN used when the caller gives none.
const DEFAULT_CN: &str = "airlock local CA";
/// How long a generated CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a leaf is valid (browsers cap public leaves at 398 days; ours are minted on demand).
pub(crate) const LEAF_VALIDITY: Duration = Duration::days(30);
/// Backdating, so that a client whose clock runs a little behind still accepts a fresh cert.
const BACKDATE: Duration = Duration::days(1);
/// X.509's upper bound on a common name.
const MAX_CN_LEN: usize = 64;

/// The PEM files of a newly generated CA, for the operator to store.
pub struct CaFiles {
    pub cert_pem: String,
    /// PKCS#8; wiped from memory when dropped.
    pub key_pem: Zeroizing<String>,
}

impl fmt::Debug for CaFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFiles")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// airlock's signing CA.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    not_after: OffsetDateTime,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new CA with an ECDSA P-256 key: `CA:TRUE, pathlen:0` (it signs leaves, never other
    /// CAs), valid from a day ago for ten years, subject `CN=<common_name>, O=airlock`.
    pub fn generate(common_name: &str) -> Result<(CertificateAuthority, CaFiles), TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let now = OffsetDateTime::now_utc();
        let cn = if common_name.trim().is_empty() {
            DEFAULT_CN
        } else {
            common_name
        };

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, "airlock");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial(&provider)?);

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::Generate)?;
        let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
        let files = CaFiles {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        };
        let ca = CertificateAuthority {
            not_after: params.not_after,
            issuer: Issuer::new(params, key),
            cert_der: cert.der().clone(),
            cert_pem: files.cert_pem.clone(),
            provider,
        };
        Ok((ca, files))
    }

    /// Loads a stored CA: the first certificate of `cert_pem` and the PKCS#8 key of `key_pem`.
    /// Refuses a certificate that is not a CA, has expired, or was not issued for this key.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, TlsError> {
        let cert_der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .ok_or(TlsError::NoCertificate)?
            .map_err(TlsError::Pem)?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der).map_err(|_| TlsError::BadCertificate)?;
        if !x509.is_ca() {
            return Err(TlsError::NotCa);
        }
        let not_after = x509.validity().not_after.to_datetime();
        if not_after <= OffsetDateTime::now_utc() {
            return Err(TlsError::CaExpired);
        }
        let key = KeyPair::from_pem(key_pem).map_err(TlsError::BadKey)?;
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(TlsError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|_| TlsError::BadCertificate)?;
        Ok(CertificateAuthority {
            issuer,
            cert_pem: pem_of(&cert_der),
            cert_der,
            not_after,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// The CA certificate, PEM: what agents' trust stores get.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A leaf for `host` with its own fresh P-256 key, valid from a day before `now` for
    /// [`LEAF_VALIDITY`] (never past the CA's own end); chain = [leaf, CA].
    pub(crate) fn mint(&self, host: &Host, now: OffsetDateTime) -> Result<CertifiedKey, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let name = host.to_string();
        // Clients match the SAN; the CN is only for people reading the certificate.
        if name.len() <= MAX_CN_LEN {
            params.distinguished_name.push(DnType::CommonName, name.as_str());
        }
        params.subject_alt_names = vec![match host {
            Host::Ip(ip) => SanType::IpAddress(*ip),
            Host::Dns(dns) => SanType::DnsName(dns.clone().try_into().map_err(TlsError::Generate)?),
        }];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - BACKDATE;
        params.not_after = (now + LEAF_VALIDITY).min(self.not_after);
        params.serial_number = Some(random_serial(&self.provider)?);
        params.use_authority_key_identifier_extension = true;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::Generate)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(TlsError::Generate)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        CertifiedKey::from_der(vec![cert.der().clone(), self.cert_der.clone()], key_der, &self.provider)
            .map_err(TlsError::Rustls)
    }
}

/// A random positive 16-byte serial number (RFC 5280 allows up to 20 octets).
fn random_serial(provider: &CryptoProvider) -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    provider
        .secure_random
        .fill(&mut bytes)
        .map_err(|e| TlsError::Rustls(e.into()))?;
    // Top bit clear keeps it positive; the next bit set keeps its DER encoding 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    // RFC 7468 lines are 64 characters; base64 output is ASCII, so byte chunks are whole chars.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
