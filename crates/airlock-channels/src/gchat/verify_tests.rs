use super::*;
use crate::jwt::SigningKey;

const A: &str = include_str!("../../tests/keys/test-rsa-a.pem");
const X: &str = include_str!("../../tests/keys/test-rsa-x.pem");
const NOW: u64 = 1_900_000_000;
const PROJECT: &str = "123456789012";
const URL: &str = "https://airlock.example.com/callbacks/gchat";

fn keys() -> Vec<Jwk> {
    vec![SigningKey::from_pem(A).unwrap().public("g-1")]
}

fn headers(claims: &Value, key: &str, kid: &str) -> http::HeaderMap {
    let t = SigningKey::from_pem(key).unwrap().sign(Some(kid), claims).unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("authorization", format!("Bearer {t}").parse().unwrap());
    h
}

fn chat_claims() -> Value {
    json!({"iss": CHAT_ISSUER, "aud": PROJECT, "iat": NOW - 5, "exp": NOW + 3600})
}

fn click() -> Value {
    json!({"type": "CARD_CLICKED", "eventTime": "2026-12-07T08:00:00.000Z",
           "space": {"name": "spaces/AAAAdm1", "type": "DM"},
           "message": {"name": "spaces/AAAAdm1/messages/m1.m1"},
           "user": {"name": "users/1234567890", "displayName": "Alice", "type": "HUMAN"},
           "action": {"actionMethodName": "airlock", "parameters": [{"key": "token", "value": "tok.en"}]},
           "common": {"invokedFunction": "airlock", "parameters": {"token": "tok.en"}}})
}

fn body() -> Vec<u8> {
    serde_json::to_vec(&click()).unwrap()
}

#[test]
fn a_click_signed_by_chat_for_the_project_is_a_click_by_user_name() {
    let aud = Audience::parse(PROJECT);
    let e = verify(&headers(&chat_claims(), A, "g-1"), &body(), &keys(), &aud, NOW).unwrap();
    match inbound(&e) {
        Inbound::Click { user, token, ack } => {
            assert_eq!((user.as_str(), token.as_str()), ("users/1234567890", "tok.en"));
            assert_eq!(ack["message"], "spaces/AAAAdm1/messages/m1.m1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn expired_wrong_audience_wrong_issuer_and_unknown_key_are_refused() {
    let aud = Audience::parse(PROJECT);
    let mut c = chat_claims();
    c["exp"] = json!(NOW - 301);
    assert_eq!(
        verify(&headers(&c, A, "g-1"), &body(), &keys(), &aud, NOW),
        Err(CallbackError::Stale)
    );
    let mut c = chat_claims();
    c["aud"] = json!("999");
    assert_eq!(
        verify(&headers(&c, A, "g-1"), &body(), &keys(), &aud, NOW),
        Err(CallbackError::BadSignature)
    );
    let mut c = chat_claims();
    c["iss"] = json!("attacker@evil.iam.gserviceaccount.com");
    assert_eq!(
        verify(&headers(&c, A, "g-1"), &body(), &keys(), &aud, NOW),
        Err(CallbackError::BadSignature)
    );
    let r = verify(&headers(&chat_claims(), X, "x"), &body(), &keys(), &aud, NOW);
    assert_eq!(r, Err(CallbackError::BadSignature));
}

#[test]
fn an_id_token_counts_only_for_the_endpoint_and_only_from_chat() {
    let aud = Audience::parse(URL);
    assert_eq!(aud.default_jwks(), GOOGLE_JWKS);
    let id = json!({"iss": "https://accounts.google.com", "aud": URL, "exp": NOW + 600, "iat": NOW,
                    "email": CHAT_ISSUER, "email_verified": true, "sub": "1"});
    assert!(verify(&headers(&id, A, "g-1"), &body(), &keys(), &aud, NOW).is_ok());
    // Anyone with a Google account can mint an ID token for our URL: not Chat.
    let mut other = id.clone();
    other["email"] = json!("mallory@gmail.com");
    let r = verify(&headers(&other, A, "g-1"), &body(), &keys(), &aud, NOW);
    assert_eq!(r, Err(CallbackError::BadSignature));
    // A project-number token is not an ID token.
    let r = verify(&headers(&chat_claims(), A, "g-1"), &body(), &keys(), &aud, NOW);
    assert_eq!(r, Err(CallbackError::BadSignature));
}

#[test]
fn other_events_and_bots_are_not_clicks() {
    let mut e = click();
    e["type"] = json!("MESSAGE");
    assert_eq!(inbound(&e), Inbound::Other);
    let mut e = click();
    e["user"]["type"] = json!("BOT");
    assert_eq!(inbound(&e), Inbound::Other);
    let mut e = click();
    e["common"]["invokedFunction"] = json!("other");
    e["action"]["actionMethodName"] = json!("other");
    assert_eq!(inbound(&e), Inbound::Other);
    let mut e = click();
    e["user"]["name"] = json!("users/../../x");
    assert_eq!(inbound(&e), Inbound::Other);
    assert!(is_name("spaces/AAAA/messages/b.c", "spaces/"));
    assert!(!is_name("spaces/../x", "spaces/"));
}
