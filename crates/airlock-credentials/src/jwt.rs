//! The GitHub App's JWT (RS256): `iss` the App, `iat` 60 s in the past (GitHub's advice against
//! clock drift), `exp` 9 minutes ahead (GitHub refuses more than 10). Signed with `ring` from the
//! sealed private key, PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out) or PKCS#8.

use airlock_vault::SecretBytes;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

/// Seconds `iat` is set in the past.
pub const IAT_SKEW: i64 = 60;
/// Seconds the JWT is valid from now.
pub const LIFETIME: i64 = 540;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the private key is not a PEM RSA private key (PKCS#1 or PKCS#8)")]
    NotPem,
    #[error("the private key is not a usable RSA key (2048 to 8192 bits)")]
    BadKey,
    #[error("signing failed")]
    Sign,
}

/// Parses a PEM private key (PKCS#1 or PKCS#8) into a signing key.
pub fn key_pair(pem: &SecretBytes) -> Result<RsaKeyPair, JwtError> {
    let der = rustls_pemfile::private_key(&mut pem.expose())
        .ok()
        .flatten()
        .ok_or(JwtError::NotPem)?;
    match &der {
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        _ => return Err(JwtError::NotPem),
    }
    .map_err(|_| JwtError::BadKey)
}

/// The App JWT for `app_id` at `now` (seconds since the epoch).
pub fn app_jwt(app_id: &str, key: &RsaKeyPair, now: i64) -> Result<SecretBytes, JwtError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({ "iat": now - IAT_SKEW, "exp": now + LIFETIME, "iss": app_id });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let mut sig = Zeroizing::new(vec![0u8; key.public().modulus_len()]);
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| JwtError::Sign)?;
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&*sig));
    Ok(SecretBytes::new(jwt.into_bytes()))
}

/// Checks an RS256 JWT against a DER `RSAPublicKey` and returns its claims (for tests and fakes).
pub fn verify(jwt: &str, public_key_der: &[u8]) -> Option<serde_json::Value> {
    let (input, sig) = jwt.rsplit_once('.')?;
    let (header, claims) = input.split_once('.')?;
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header["alg"] != "RS256" {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public_key_der)
        .verify(input.as_bytes(), &sig)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKCS1: &str = include_str!("../tests/data/github_app_test_key.pem");
    const PKCS8: &str = include_str!("../tests/data/github_app_test_key.pkcs8.pem");

    #[test]
    fn the_app_jwt_is_rs256_with_githubs_claims_and_verifies_with_the_public_key() {
        for pem in [PKCS1, PKCS8] {
            let key = key_pair(&SecretBytes::new(pem.as_bytes().to_vec())).expect("test key parses");
            let jwt = app_jwt("12345", &key, 1_700_000_000).expect("signs");
            let text = String::from_utf8(jwt.expose().to_vec()).expect("ascii");
            let claims = verify(&text, key.public().as_ref()).expect("signature verifies");
            assert_eq!(claims["iss"], "12345");
            assert_eq!(claims["iat"], 1_700_000_000 - 60);
            assert_eq!(claims["exp"], 1_700_000_000 + 540);
            // A changed claim no longer verifies.
            let mut parts: Vec<&str> = text.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(r#"{"iss":"999","iat":0,"exp":9999999999}"#);
            parts[1] = &forged;
            assert!(verify(&parts.join("."), key.public().as_ref()).is_none());
        }
    }

    #[test]
    fn a_key_that_is_not_an_rsa_pem_is_refused_without_echoing_it() {
        let e = key_pair(&SecretBytes::new(b"-----BEGIN NONSENSE-----\nAAAA\n".to_vec())).unwrap_err();
        assert_eq!(e, JwtError::NotPem);
        assert!(!e.to_string().contains("AAAA"));
    }
}
