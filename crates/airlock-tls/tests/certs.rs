//! The CA and its leaves, checked the way clients check them: parsed X.509, rustls' WebPKI
//! verifier, and a real TLS handshake.

use std::sync::Arc;

use airlock_tls::{CertificateAuthority, FixedCert, LeafCache, TlsError};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

fn ca() -> (Arc<CertificateAuthority>, airlock_tls::CaFiles) {
    let (ca, files) = CertificateAuthority::generate("airlock local CA").expect("generate");
    (Arc::new(ca), files)
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
    X509Certificate::from_der(der).expect("valid X.509").1
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verifier(ca: &CertificateAuthority) -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("root");
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .expect("verifier")
}

#[test]
fn ca_is_a_constrained_signing_ca() {
    let (ca, files) = ca();
    let cert = parse(ca.cert_der());
    let bc = cert.basic_constraints().expect("one extension").expect("present").value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().expect("one extension").expect("present").value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    let subject = cert.subject().to_string();
    assert!(
        subject.contains("CN=airlock local CA") && subject.contains("O=airlock"),
        "{subject}"
    );
    let days = (cert.validity().not_after.to_datetime() - time::OffsetDateTime::now_utc()).whole_days();
    assert!((3640..=3650).contains(&days), "{days}");
    assert!(cert.validity().not_before.to_datetime() < time::OffsetDateTime::now_utc() - time::Duration::hours(23));
    assert!(cert.raw_serial().len() >= 16);
    // The PEM handed to the operator is the same certificate.
    assert_eq!(
        airlock_tls::load_pem_certs(files.cert_pem.as_bytes()).expect("pem"),
        vec![ca.cert_der().clone()]
    );
    assert!(files.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    // Two CAs never share a serial or a key.
    let (other, _) = CertificateAuthority::generate("x").expect("generate");
    let other = parse(other.cert_der());
    assert_ne!(cert.raw_serial(), other.raw_serial());
    assert_ne!(cert.public_key().raw, other.public_key().raw);
}

#[test]
fn leaf_is_a_short_lived_server_cert_with_its_own_key() {
    let (ca, _) = ca();
    let cache = LeafCache::new(Arc::clone(&ca), 8);
    let leaf = cache.get("api.example.com").expect("leaf");
    assert_eq!(leaf.cert.len(), 2, "chain = [leaf, CA]");
    assert_eq!(&leaf.cert[1], ca.cert_der());
    let cert = parse(&leaf.cert[0]);
    let ca_cert = parse(ca.cert_der());
    assert_ne!(
        cert.public_key().raw,
        ca_cert.public_key().raw,
        "leaf key is not the CA key"
    );
    assert_eq!(cert.issuer(), ca_cert.subject());
    assert!(!cert.is_ca());
    let eku = cert
        .extended_key_usage()
        .expect("one extension")
        .expect("present")
        .value;
    assert!(eku.server_auth && !eku.client_auth);
    let sans: Vec<String> = cert
        .extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
        .flat_map(|san| san.general_names.iter().map(|n| format!("{n:?}")))
        .collect();
    assert_eq!(sans, [format!("{:?}", GeneralName::DNSName("api.example.com"))]);
    let life = cert.validity().not_after.to_datetime() - cert.validity().not_before.to_datetime();
    assert_eq!(life.whole_days(), 31, "now-1d .. now+30d");
    // Every host gets its own key.
    let other = parse(&cache.get("other.example.com").expect("leaf").cert[0])
        .public_key()
        .raw
        .to_vec();
    assert_ne!(cert.public_key().raw, &other[..]);
}

#[test]
fn leaf_verifies_for_its_host_only() {
    let (ca, _) = ca();
    let cache = LeafCache::new(Arc::clone(&ca), 8);
    let verifier = verifier(&ca);
    let now = UnixTime::now();
    let check = |leaf: &rustls::sign::CertifiedKey, name: &str| {
        let name = ServerName::try_from(name.to_owned()).expect("server name");
        verifier.verify_server_cert(&leaf.cert[0], &leaf.cert[1..], &name, &[], now)
    };
    let leaf = cache.get("api.example.com").expect("leaf");
    assert!(check(&leaf, "api.example.com").is_ok());
    assert!(check(&leaf, "API.Example.com").is_ok());
    assert!(check(&leaf, "evil.example.com").is_err());
    assert!(check(&leaf, "example.com").is_err());
    let ip = cache.get("127.0.0.1").expect("leaf");
    assert!(check(&ip, "127.0.0.1").is_ok());
    assert!(check(&ip, "127.0.0.2").is_err());
    let v6 = cache.get("[::1]").expect("leaf");
    assert!(check(&v6, "::1").is_ok());
    // A leaf from another CA is not trusted.
    let (stranger, _) = CertificateAuthority::generate("stranger").expect("generate");
    let foreign = LeafCache::new(Arc::new(stranger), 1)
        .get("api.example.com")
        .expect("leaf");
    assert!(check(&foreign, "api.example.com").is_err());
}

#[test]
fn load_round_trips_and_checks_the_key() {
    let (ca, files) = ca();
    let loaded = CertificateAuthority::load(&files.cert_pem, &files.key_pem).expect("load");
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.cert_pem(), files.cert_pem);
    // Leaves from the loaded CA verify against the original certificate.
    let leaf = LeafCache::new(Arc::new(loaded), 1).get("db.internal").expect("leaf");
    let name = ServerName::try_from("db.internal").expect("name");
    assert!(
        verifier(&ca)
            .verify_server_cert(&leaf.cert[0], &[], &name, &[], UnixTime::now())
            .is_ok()
    );

    let (_, other) = CertificateAuthority::generate("other").expect("generate");
    let mismatch = CertificateAuthority::load(&files.cert_pem, &other.key_pem);
    assert!(matches!(mismatch, Err(TlsError::KeyMismatch)), "{mismatch:?}");
    assert!(matches!(
        CertificateAuthority::load("", &files.key_pem),
        Err(TlsError::NoCertificate)
    ));
    assert!(matches!(
        CertificateAuthority::load(&files.cert_pem, "junk"),
        Err(TlsError::BadKey(_))
    ));
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        CertificateAuthority::load(garbage, &files.key_pem),
        Err(TlsError::BadCertificate)
    ));
}

#[test]
fn load_refuses_a_certificate_that_is_not_a_ca() {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["example.com".to_owned()])
        .expect("params")
        .self_signed(&key);
    let cert = cert.expect("self-signed");
    let err = CertificateAuthority::load(&cert.pem(), &key.serialize_pem());
    assert!(matches!(err, Err(TlsError::NotCa)), "{err:?}");
}

#[tokio::test]
async fn real_handshake_with_fixed_cert() {
    let (ca, _) = ca();
    let cache = LeafCache::new(Arc::clone(&ca), 8);
    let leaf = cache.get("api.example.com").expect("leaf");

    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(leaf)));
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("root");
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let server_task = tokio::spawn(async move {
        let mut tls = acceptor.accept(server_io).await.expect("server handshake");
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.expect("read");
        tls.write_all(b"pong!").await.expect("write");
        tls.shutdown().await.expect("shutdown");
        buf
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client.clone()));
    let name = ServerName::try_from("api.example.com").expect("name");
    let mut tls = connector.connect(name, client_io).await.expect("client handshake");
    tls.write_all(b"ping!").await.expect("write");
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).await.expect("read");
    assert_eq!(reply, b"pong!");
    assert_eq!(&server_task.await.expect("server"), b"ping!");

    // The same certificate presented for another name fails the client's check.
    let leaf = cache.get("api.example.com").expect("leaf");
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(leaf)));
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let server_task = tokio::spawn(async move { acceptor.accept(server_io).await.is_ok() });
    let name = ServerName::try_from("evil.example.com").expect("name");
    let result = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, client_io)
        .await;
    assert!(result.is_err());
    assert!(!server_task.await.expect("server"));
}
