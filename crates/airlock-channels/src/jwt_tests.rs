use super::*;
use serde_json::json;

const A: &str = include_str!("../tests/keys/test-rsa-a.pem");
const X: &str = include_str!("../tests/keys/test-rsa-x.pem");
const NOW: u64 = 1_900_000_000;
const ISS: &str = "https://api.botframework.com";
const AUD: &str = "5b1c0f3e-9e41-4c11-8b7a-0d5e4a7f2c10";

fn expect() -> Expect<'static> {
    Expect {
        issuers: &[ISS],
        audience: AUD,
        skew_secs: SKEW_SECS,
    }
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "exp": NOW + 3600, "nbf": NOW - 60, "serviceUrl": "https://smba.example/"})
}

fn keys() -> Vec<Jwk> {
    vec![SigningKey::from_pem(A).unwrap().public("key-a")]
}

fn token(claims: &Value) -> String {
    SigningKey::from_pem(A).unwrap().sign(Some("key-a"), claims).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[test]
fn a_token_signed_by_a_known_key_verifies_and_yields_its_claims() {
    let keys = keys();
    let v = verify(&token(&claims()), &keys, &expect(), NOW).unwrap();
    assert_eq!(v.key.kid, "key-a");
    assert_eq!(v.claims["serviceUrl"], "https://smba.example/");
    // An audience list holding ours is accepted too.
    let mut c = claims();
    c["aud"] = json!(["other", AUD]);
    assert!(verify(&token(&c), &keys, &expect(), NOW).is_ok());
}

#[test]
fn expiry_and_not_before_allow_five_minutes_of_skew_and_no_more() {
    let keys = keys();
    let mut c = claims();
    c["exp"] = json!(NOW - 299);
    assert!(verify(&token(&c), &keys, &expect(), NOW).is_ok());
    c["exp"] = json!(NOW - 301);
    assert_eq!(verify(&token(&c), &keys, &expect(), NOW), Err(JwtError::Expired));
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(verify(&token(&c), &keys, &expect(), NOW), Err(JwtError::Expired));
    let mut c = claims();
    c["nbf"] = json!(NOW + 299);
    assert!(verify(&token(&c), &keys, &expect(), NOW).is_ok());
    c["nbf"] = json!(NOW + 301);
    assert_eq!(verify(&token(&c), &keys, &expect(), NOW), Err(JwtError::NotYetValid));
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let keys = keys();
    let mut c = claims();
    c["iss"] = json!("https://sts.windows.net/evil/");
    assert_eq!(verify(&token(&c), &keys, &expect(), NOW), Err(JwtError::Issuer));
    let mut c = claims();
    c["aud"] = json!("another-bot");
    assert_eq!(verify(&token(&c), &keys, &expect(), NOW), Err(JwtError::Audience));
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(verify(&token(&c), &keys, &expect(), NOW), Err(JwtError::Audience));
}

#[test]
fn an_unknown_kid_or_a_key_that_did_not_sign_is_refused() {
    let keys = keys();
    let other = SigningKey::from_pem(X).unwrap();
    let t = other.sign(Some("key-x"), &claims()).unwrap();
    assert_eq!(verify(&t, &keys, &expect(), NOW), Err(JwtError::UnknownKey));
    // Signed by the attacker's key but naming ours.
    let t = other.sign(Some("key-a"), &claims()).unwrap();
    assert_eq!(verify(&t, &keys, &expect(), NOW), Err(JwtError::BadSignature));
    // A valid token whose claims were changed after signing.
    let t = token(&claims());
    let mut p: Vec<&str> = t.split('.').collect();
    let mut c = claims();
    c["aud"] = json!("x");
    let forged = b64(&c);
    p[1] = &forged;
    assert_eq!(verify(&p.join("."), &keys, &expect(), NOW), Err(JwtError::BadSignature));
}

#[test]
fn alg_none_hs256_and_garbage_are_refused_before_any_key() {
    let keys = keys();
    for alg in ["none", "HS256", "RS512", "PS256", "ES256"] {
        let h = b64(&json!({"alg": alg, "kid": "key-a", "typ": "JWT"}));
        let t = format!("{h}.{}.", b64(&claims()));
        assert_eq!(verify(&t, &keys, &expect(), NOW), Err(JwtError::Algorithm(alg.into())));
        // HS256 "signed" with the public modulus as the secret: still refused.
        let t = format!("{h}.{}.{}", b64(&claims()), URL_SAFE_NO_PAD.encode(&keys[0].n));
        assert!(verify(&t, &keys, &expect(), NOW).is_err());
    }
    let no_alg = format!("{}.{}.", b64(&json!({"kid": "key-a"})), b64(&claims()));
    assert!(matches!(
        verify(&no_alg, &keys, &expect(), NOW),
        Err(JwtError::Algorithm(_))
    ));
    for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
        assert!(verify(bad, &keys, &expect(), NOW).is_err(), "{bad}");
    }
}

#[test]
fn jwks_documents_yield_their_rsa_signing_keys() {
    let k = keys().remove(0);
    let doc = json!({"keys": [
        {"kty": "RSA", "use": "sig", "kid": "key-a", "n": URL_SAFE_NO_PAD.encode(&k.n),
         "e": URL_SAFE_NO_PAD.encode(&k.e), "endorsements": ["msteams", "skype"]},
        {"kty": "EC", "kid": "ec", "crv": "P-256"},
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
    ]});
    let parsed = parse_jwks(&doc);
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].n, k.n);
    assert_eq!(
        parsed[0].endorsements.as_deref(),
        Some(&["msteams".to_string(), "skype".into()][..])
    );
    assert!(parse_jwks(&json!({"keys": "x"})).is_empty());
}
