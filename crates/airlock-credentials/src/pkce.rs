//! PKCE (RFC 7636) with the S256 method: the verifier stays in the `airlock connect` process; the
//! authorization request carries only its SHA-256, so a code intercepted on its way back (through
//! the browser, the control listener or the store) cannot be redeemed by anyone else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A fresh verifier: 32 random bytes, base64url (43 characters of the unreserved set, §4.1).
pub fn verifier() -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()))
}

/// `BASE64URL(SHA256(ASCII(verifier)))` (§4.2, method S256).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A random `state` for the authorization request (CSRF protection, RFC 6749 §10.12).
pub fn state() -> String {
    let mut raw = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636, Appendix B.
    #[test]
    fn s256_matches_the_rfc_7636_appendix_b_vector() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_43_unreserved_characters_and_differ() {
        let (a, b) = (verifier(), verifier());
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)));
        assert_ne!(*a, *b);
        assert_ne!(state(), state());
    }
}
