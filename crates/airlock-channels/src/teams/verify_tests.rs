use super::*;
use crate::jwt::SigningKey;

const A: &str = include_str!("../../tests/keys/test-rsa-a.pem");
const X: &str = include_str!("../../tests/keys/test-rsa-x.pem");
const APP: &str = "5b1c0f3e-9e41-4c11-8b7a-0d5e4a7f2c10";
const SERVICE: &str = "https://smba.trafficmanager.net/emea/";
const NOW: u64 = 1_900_000_000;
const ALICE: &str = "6f1d2c3b-aaaa-4bbb-8ccc-123456789abc";

fn keys() -> Vec<Jwk> {
    let mut k = SigningKey::from_pem(A).unwrap().public("bf-1");
    k.endorsements = Some(vec!["msteams".into(), "webchat".into()]);
    vec![k]
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": APP, "exp": NOW + 600, "nbf": NOW - 10, "serviceurl": SERVICE})
}

fn headers(claims: &Value, key: &str, kid: &str) -> http::HeaderMap {
    let t = SigningKey::from_pem(key).unwrap().sign(Some(kid), claims).unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("authorization", format!("Bearer {t}").parse().unwrap());
    h
}

fn press() -> Value {
    json!({"type": "invoke", "name": "adaptiveCard/action", "channelId": "msteams", "serviceUrl": SERVICE,
           "id": "f:1", "replyToId": "1700000000001",
           "from": {"id": "29:1abc", "aadObjectId": ALICE},
           "conversation": {"id": "a:1xYz", "conversationType": "personal", "tenantId": "tenant-1"},
           "recipient": {"id": format!("28:{APP}")},
           "value": {"action": {"type": "Action.Execute", "verb": "approve", "data": {"airlock": "tok.en"}},
                     "trigger": "manual"}})
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn a_press_signed_by_the_bot_framework_is_a_click_by_its_aad_object_id() {
    let a = verify(&headers(&claims(), A, "bf-1"), &body(&press()), &keys(), APP, NOW).unwrap();
    match inbound(&a, Some("tenant-1")).unwrap() {
        Inbound::Click { user, token, ack } => {
            assert_eq!((user.as_str(), token.as_str()), (ALICE, "tok.en"));
            assert_eq!(ack["activity"], "1700000000001");
            assert_eq!(ack["invoke"], true);
        }
        other => panic!("{other:?}"),
    }
    // Action.Submit arrives as a message whose value is the action's data.
    let mut submit = press();
    submit["type"] = json!("message");
    submit["value"] = json!({"airlock": "tok.en"});
    assert!(matches!(inbound(&submit, None).unwrap(), Inbound::Click { .. }));
}

#[test]
fn expired_wrong_audience_wrong_issuer_unknown_key_and_unsigned_are_refused() {
    let b = body(&press());
    let mut c = claims();
    c["exp"] = json!(NOW - 301);
    assert_eq!(
        verify(&headers(&c, A, "bf-1"), &b, &keys(), APP, NOW),
        Err(CallbackError::Stale)
    );
    let mut c = claims();
    c["aud"] = json!("another-bot");
    assert_eq!(
        verify(&headers(&c, A, "bf-1"), &b, &keys(), APP, NOW),
        Err(CallbackError::BadSignature)
    );
    let mut c = claims();
    c["iss"] = json!("https://sts.windows.net/x/");
    assert_eq!(
        verify(&headers(&c, A, "bf-1"), &b, &keys(), APP, NOW),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        verify(&headers(&claims(), X, "evil"), &b, &keys(), APP, NOW),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        verify(&headers(&claims(), X, "bf-1"), &b, &keys(), APP, NOW),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        verify(&http::HeaderMap::new(), &b, &keys(), APP, NOW),
        Err(CallbackError::MissingHeader("authorization"))
    );
}

#[test]
fn the_service_url_claim_must_name_the_activity_s_service_url() {
    let mut moved = press();
    moved["serviceUrl"] = json!("https://attacker.example/");
    let r = verify(&headers(&claims(), A, "bf-1"), &body(&moved), &keys(), APP, NOW);
    assert_eq!(r, Err(CallbackError::BadSignature));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("serviceurl");
    let r = verify(&headers(&c, A, "bf-1"), &body(&press()), &keys(), APP, NOW);
    assert_eq!(r, Err(CallbackError::BadSignature));
}

#[test]
fn a_key_not_endorsed_for_teams_and_other_channels_are_refused() {
    let mut k = keys();
    k[0].endorsements = Some(vec!["webchat".into()]);
    let r = verify(&headers(&claims(), A, "bf-1"), &body(&press()), &k, APP, NOW);
    assert_eq!(r, Err(CallbackError::BadSignature));
    let mut web = press();
    web["channelId"] = json!("webchat");
    let r = verify(&headers(&claims(), A, "bf-1"), &body(&web), &keys(), APP, NOW);
    assert!(matches!(r, Err(CallbackError::Malformed(_))));
}

#[test]
fn personal_messages_and_installs_teach_a_conversation_and_other_tenants_are_refused() {
    let mut hi = press();
    hi["type"] = json!("message");
    hi["text"] = json!("hi");
    hi.as_object_mut().unwrap().remove("value");
    match inbound(&hi, None).unwrap() {
        Inbound::Reference { user, reference } => {
            assert_eq!(user, ALICE);
            assert_eq!(reference, json!({"service": SERVICE, "conversation": "a:1xYz"}));
        }
        other => panic!("{other:?}"),
    }
    let mut group = hi.clone();
    group["conversation"]["conversationType"] = json!("groupChat");
    assert_eq!(inbound(&group, None).unwrap(), Inbound::Other);
    assert!(inbound(&hi, Some("tenant-2")).is_err());
    let mut bad = hi.clone();
    bad["serviceUrl"] = json!("http://169.254.169.254/");
    assert!(inbound(&bad, None).is_err());
    let mut spoof = press();
    spoof["from"]["aadObjectId"] = json!("alice\n");
    assert!(inbound(&spoof, None).is_err());
}
