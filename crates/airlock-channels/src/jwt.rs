//! RS256 JSON Web Tokens, verified (the Bot Framework's and Google Chat's bearer tokens) and
//! signed (a Google service account's JWT bearer grant). Pure: the keys and the clock come in
//! as arguments; fetching and caching the keys is [`crate::jwks`].
//!
//! Only RS256 is accepted: `alg: none`, HS256 (which would turn a public key into a shared
//! secret) and every other algorithm are refused before any key is looked at. The key is
//! chosen by `kid` alone, never taken from the token (`jwk`, `x5u`, `jku` are ignored).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents};
use serde_json::{Map, Value};

/// One RSA signing key of a JWKS (`{"keys": [{"kty": "RSA", "kid", "n", "e", …}]}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    /// Bot Framework keys name the channels they may sign for (`["msteams", …]`).
    pub endorsements: Option<Vec<String>>,
}

/// The RSA keys of a JWKS document; keys of other types or without a `kid` are skipped.
pub fn parse_jwks(doc: &Value) -> Vec<Jwk> {
    let b64 = |v: &Value| {
        v.as_str()
            .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
    };
    doc["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["kty"] == "RSA" && k["use"].as_str().is_none_or(|u| u == "sig"))
        .filter_map(|k| {
            Some(Jwk {
                kid: k["kid"].as_str()?.to_string(),
                n: b64(&k["n"])?,
                e: b64(&k["e"])?,
                endorsements: k["endorsements"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_string)).collect()),
            })
        })
        .collect()
}

/// What a token must say to be accepted.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// Accepted `iss` values (exact match).
    pub issuers: &'a [&'a str],
    /// The `aud` (a string, or an array holding it).
    pub audience: &'a str,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub skew_secs: u64,
}

/// The Bot Framework's and Google's allowance for clock skew: 5 minutes.
pub const SKEW_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT")]
    Malformed,
    #[error("signing algorithm {0:?} is not accepted (RS256 only)")]
    Algorithm(String),
    #[error("no signing key with this kid")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
}

/// A verified token: its key and its claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified<'k> {
    pub key: &'k Jwk,
    pub claims: Map<String, Value>,
}

fn part(s: &str) -> Result<Map<String, Value>, JwtError> {
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&raw) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::Malformed),
    }
}

/// The `kid` of a token's header (to pick or fetch keys), after checking the algorithm.
pub fn kid(token: &str) -> Result<String, JwtError> {
    let header = part(token.split('.').next().unwrap_or_default())?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        other => return Err(JwtError::Algorithm(other.unwrap_or("").to_string())),
    }
    header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(JwtError::UnknownKey)
}

/// Verifies `token` against `keys` for `expect` at `now_secs`.
pub fn verify<'k>(token: &str, keys: &'k [Jwk], expect: &Expect<'_>, now_secs: u64) -> Result<Verified<'k>, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let kid = kid(token)?;
    let key = keys.iter().find(|k| k.kid == kid).ok_or(JwtError::UnknownKey)?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let signed = &token[..h.len() + 1 + c.len()];
    RsaPublicKeyComponents { n: &key.n, e: &key.e }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &sig)
        .map_err(|_| JwtError::BadSignature)?;
    let claims = part(c)?;
    let num = |k: &str| claims.get(k).and_then(Value::as_u64);
    match num("exp") {
        Some(exp) if now_secs <= exp.saturating_add(expect.skew_secs) => {}
        _ => return Err(JwtError::Expired),
    }
    if let Some(nbf) = num("nbf")
        && now_secs.saturating_add(expect.skew_secs) < nbf
    {
        return Err(JwtError::NotYetValid);
    }
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    if !expect.issuers.contains(&iss) {
        return Err(JwtError::Issuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == expect.audience,
        Some(Value::Array(a)) => a.iter().any(|a| a == expect.audience),
        _ => false,
    };
    if !aud_ok || expect.audience.is_empty() {
        return Err(JwtError::Audience);
    }
    Ok(Verified { key, claims })
}

/// An RS256 private key (PKCS#8), e.g. a Google service account's `private_key`.
pub struct SigningKey(signature::RsaKeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// From PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        signature::RsaKeyPair::from_pkcs8(der)
            .map(SigningKey)
            .map_err(|e| format!("not an RSA PKCS#8 private key: {e}"))
    }

    /// From a `-----BEGIN PRIVATE KEY-----` PEM block.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "no PEM \"PRIVATE KEY\" block".to_string())?;
        SigningKey::from_pkcs8(&der)
    }

    /// The public half, as a JWK with `kid`.
    pub fn public(&self, kid: &str) -> Jwk {
        let c: RsaPublicKeyComponents<Vec<u8>> = self.0.public().into();
        Jwk {
            kid: kid.to_string(),
            n: c.n,
            e: c.e,
            endorsements: None,
        }
    }

    /// `header.claims.signature` with `{"alg": "RS256", "typ": "JWT", "kid"?}` and `claims`.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> Result<String, String> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(k) = kid {
            header["kid"] = Value::String(k.to_string());
        }
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
        let input = format!("{}.{}", enc(&header), enc(claims));
        let mut sig = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "RSA signing failed".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
