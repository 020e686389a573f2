//! The signed-webhook channel: Standard Webhooks signatures (checked against the spec's
//! published vectors and an independent receiver) and the callback round trip.

mod fake;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use airlock_channels::webhook::{Webhook, WebhookConfig, parse_secret, sign, verify};
use airlock_channels::{CallbackError, Channel, ChannelError, Click, MessageRef, Reply, Status};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn headers(id: &str, ts: u64, sig: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert("webhook-signature", sig.parse().unwrap());
    h
}

#[test]
fn the_specs_test_vectors() {
    // From the Standard Webhooks reference libraries (javascript `sign function works`, rust `test_sign`).
    let key = parse_secret(SECRET).unwrap();
    let (id, ts, body) = (
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        br#"{"test": 2432232314}"#,
    );
    let sig = sign(key.expose(), id, ts, body);
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let other = parse_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    assert_eq!(
        sign(
            other.expose(),
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );

    let h = headers(id, ts, &sig);
    assert_eq!(verify(key.expose(), &h, body, ts), Ok(()));
    assert_eq!(verify(key.expose(), &h, body, ts + 300), Ok(()));
    assert_eq!(verify(key.expose(), &h, body, ts - 300), Ok(()));
    assert_eq!(verify(key.expose(), &h, body, ts + 301), Err(CallbackError::Stale));
    assert_eq!(verify(key.expose(), &h, body, ts - 301), Err(CallbackError::Stale));
}

#[test]
fn verification_rejects_what_it_must() {
    let key = parse_secret(SECRET).unwrap();
    let key = key.expose();
    let ts = now();
    let body = br#"{"token":"t","user":"u"}"#;
    let good = sign(key, "msg_1", ts, body);
    assert_eq!(verify(key, &headers("msg_1", ts, &good), body, ts), Ok(()));
    // Tampered body, id or timestamp.
    assert_eq!(
        verify(key, &headers("msg_1", ts, &good), br#"{"token":"t","user":"v"}"#, ts),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        verify(key, &headers("msg_2", ts, &good), body, ts),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        verify(key, &headers("msg_1", ts - 1, &good), body, ts),
        Err(CallbackError::BadSignature)
    );
    // Another key.
    let other = parse_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let wrong = sign(other.expose(), "msg_1", ts, body);
    assert_eq!(
        verify(key, &headers("msg_1", ts, &wrong), body, ts),
        Err(CallbackError::BadSignature)
    );
    // Key rotation: several signatures, one of them good.
    let rotated = format!(
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,{} {wrong} {good} v1,notbase64!",
        &good[3..]
    );
    assert_eq!(verify(key, &headers("msg_1", ts, &rotated), body, ts), Ok(()));
    let none = format!("{wrong} v1a,{} v2,{}", &good[3..], &good[3..]);
    assert_eq!(
        verify(key, &headers("msg_1", ts, &none), body, ts),
        Err(CallbackError::BadSignature)
    );
    // Stale, even with a good signature: a replay.
    let old = ts - 301;
    let sig = sign(key, "msg_1", old, body);
    assert_eq!(
        verify(key, &headers("msg_1", old, &sig), body, ts),
        Err(CallbackError::Stale)
    );
    // Missing or malformed headers.
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut h = headers("msg_1", ts, &good);
        h.remove(name);
        assert_eq!(verify(key, &h, body, ts), Err(CallbackError::MissingHeader(name)));
    }
    let mut h = headers("msg_1", ts, &good);
    h.insert("webhook-timestamp", "soon".parse().unwrap());
    assert_eq!(
        verify(key, &h, body, ts),
        Err(CallbackError::MissingHeader("webhook-timestamp"))
    );
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(HeaderMap, Value)>>,
    answer: Mutex<Option<(StatusCode, HeaderMap)>>,
}

/// A receiver that checks the signature on its own (plain HMAC, not the crate's `verify`).
async fn receive(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let key = STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).as_bytes());
    mac.update(&body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let fresh = h("webhook-timestamp")
        .parse::<u64>()
        .is_ok_and(|ts| now().abs_diff(ts) <= 5);
    if h("webhook-signature") != expected || !fresh || h("content-type") != "application/json" {
        return (StatusCode::UNAUTHORIZED, HeaderMap::new());
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, HeaderMap::new());
    };
    rx.got.lock().unwrap().push((headers, json));
    rx.answer
        .lock()
        .unwrap()
        .take()
        .unwrap_or((StatusCode::NO_CONTENT, HeaderMap::new()))
}

async fn receiver() -> (String, Arc<Receiver>) {
    let rx = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/hooks/airlock", axum::routing::post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/airlock", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

fn webhook(url: &str) -> Webhook {
    Webhook::new(WebhookConfig {
        url: url.to_string(),
        secret: parse_secret(SECRET).unwrap(),
    })
}

#[tokio::test]
async fn deliveries_are_signed_and_shaped() {
    let (url, rx) = receiver().await;
    let wh = webhook(&url);
    let card = fake::card();
    let buttons = fake::buttons(&card);

    let msg = wh.send(&card, &buttons, "ops-alice").await.unwrap();
    assert_eq!(msg, MessageRef("AbCdEfGhIjKl/ops-alice".into()));
    let approved = Status::Approved {
        by: vec!["alice".into()],
        at_ms: fake::AT_1403,
        grant_secs: None,
    };
    wh.update(&card, &approved, None, &msg).await.unwrap();

    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let (h0, sent) = &got[0];
    assert_eq!(sent["type"], "approval.requested");
    assert!(sent["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sent["data"]["to"], "ops-alice");
    assert_eq!(sent["data"]["card"], serde_json::to_value(&card).unwrap());
    assert_eq!(
        sent["data"]["buttons"],
        json!({ "approve": buttons.approve, "deny": buttons.deny, "grant": buttons.grant })
    );
    let (h1, updated) = &got[1];
    assert_eq!(updated["type"], "approval.updated");
    assert_eq!(
        updated["data"],
        json!({ "id": "AbCdEfGhIjKl", "to": "ops-alice",
                "status": { "state": "approved", "by": ["alice"], "at_ms": fake::AT_1403, "grant_secs": null } })
    );
    // A fresh delivery id each time, never with the '.' separator.
    let ids: Vec<&str> = [h0, h1].map(|h| h["webhook-id"].to_str().unwrap()).to_vec();
    assert_ne!(ids[0], ids[1]);
    assert!(ids.iter().all(|id| id.starts_with("msg_") && !id.contains('.')));

    // Anything but 2xx is a failed delivery.
    let mut retry = HeaderMap::new();
    retry.insert("retry-after", "12".parse().unwrap());
    *rx.answer.lock().unwrap() = Some((StatusCode::TOO_MANY_REQUESTS, retry));
    let e = wh.send(&card, &buttons, "ops-alice").await.unwrap_err();
    assert!(
        matches!(
            e,
            ChannelError::RateLimited {
                retry_after_secs: 12,
                ..
            }
        ),
        "{e}"
    );
    *rx.answer.lock().unwrap() = Some((StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new()));
    assert!(matches!(
        wh.update(&card, &approved, None, &msg).await,
        Err(ChannelError::Platform { .. })
    ));
    // A receiver holding another key refuses us.
    let wrong = Webhook::new(WebhookConfig {
        url: url.clone(),
        secret: parse_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap(),
    });
    let e = wrong.send(&card, &buttons, "ops-alice").await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    // Nobody listening: the URL (which may carry a credential) stays out of the error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = webhook(&format!("http://127.0.0.1:{port}/hooks/secret-path-DISTINCTIVE"));
    let e = down.send(&card, &buttons, "ops-alice").await.unwrap_err();
    assert!(matches!(e, ChannelError::Transport { .. }), "{e}");
    assert!(!format!("{e} {e:?} {down:?}").contains("DISTINCTIVE"));
}

#[tokio::test]
async fn callbacks_round_trip() {
    let wh = webhook("http://127.0.0.1:9/unused");
    let key = parse_secret(SECRET).unwrap();
    let ts = now();
    let body = serde_json::to_vec(&json!({ "token": "AbC.a.1.xyz", "user": "ops-alice" })).unwrap();
    let h = headers("msg_cb1", ts, &sign(key.expose(), "msg_cb1", ts, &body));
    assert_eq!(
        wh.callback(&h, &body, ts),
        Ok(Some(Click {
            done: Default::default(),
            channel: "webhook",
            user: "ops-alice".into(),
            token: "AbC.a.1.xyz".into(),
            ack: json!({}),
        }))
    );
    assert_eq!(wh.callback(&h, &body, ts + 301), Err(CallbackError::Stale));
    let mut tampered = body.clone();
    tampered[12] ^= 1;
    assert_eq!(wh.callback(&h, &tampered, ts), Err(CallbackError::BadSignature));
    // Signed but not a click.
    for bad in [&b"[]"[..], br#"{"token":"","user":"u"}"#, br#"{"user":"u"}"#] {
        let h = headers("msg_cb2", ts, &sign(key.expose(), "msg_cb2", ts, bad));
        assert!(matches!(wh.callback(&h, bad, ts), Err(CallbackError::Malformed(_))));
    }
    let click = Click {
        done: Default::default(),
        channel: "webhook",
        user: "u".into(),
        token: "t".into(),
        ack: json!({}),
    };
    let reply = Reply {
        ok: true,
        text: "ok".into(),
    };
    wh.acknowledge(&click, &reply).await.unwrap();
}
