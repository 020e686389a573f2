//! WhatsApp rendering and webhooks: hostile requests render inert within WhatsApp's limits,
//! with exactly our buttons; the webhook is authenticated before anything is read.

mod fake_slack;

use std::sync::Arc;

use airlock_channels::memory::Volatile;
use airlock_channels::text::is_deceptive;
use airlock_channels::whatsapp::render::{self, BODY_MAX_CHARS, BUTTON_TITLE_MAX};
use airlock_channels::whatsapp::{WhatsApp, WhatsAppConfig};
use airlock_channels::{CallbackError, Channel, Status};
use airlock_vault::SecretBytes;
use fake_slack::cards::{buttons, card, hostile_card};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const PUBLIC: &str = "https://airlock.example.com";

/// Agent text stays inside the one monospace block; nothing hidden; limits hold.
fn assert_inert(text: &str) {
    assert!(
        text.chars().count() <= BODY_MAX_CHARS,
        "{} characters",
        text.chars().count()
    );
    assert!(!text.chars().any(is_deceptive), "hidden character: {text:?}");
    assert_eq!(text.matches("```").count(), 2, "one block, ours: {text}");
    assert!(text.starts_with("```"), "{text}");
    let after = &text[text.rfind("```").unwrap() + 3..];
    // After the block only our own lines: digest, status, the dashboard link.
    assert!(after.starts_with("\nDigest "), "{after}");
    assert!(
        after.contains(&format!("Whole request: {PUBLIC}/dashboard/approvals/")),
        "{after}"
    );
}

#[test]
fn hostile_request_renders_inert_with_only_our_buttons() {
    let mut c = hostile_card();
    let markup = "*bold* _it_ ~strike~ `code` ```block``` > quote @everyone @15551234567 https://evil.example";
    c.agent = format!("{markup}\u{202E}\u{200B}");
    c.body.text = format!("{markup}\n{}", c.body.text);
    let b = buttons(true);
    let m = render::interactive("15551234567", &c, &b, PUBLIC);
    let body = m["interactive"]["body"]["text"].as_str().unwrap();
    assert_inert(body);
    assert!(body.contains("more bytes — full request on the dashboard"), "{body}");
    assert!(body.contains("<U+202E>"), "{body}");
    let ids: Vec<&str> = m["interactive"]["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reply"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.approve.as_str(), b.deny.as_str(), b.grant.as_deref().unwrap()]);
    for btn in m["interactive"]["action"]["buttons"].as_array().unwrap() {
        assert!(btn["reply"]["title"].as_str().unwrap().chars().count() <= BUTTON_TITLE_MAX);
    }
    assert!(m["interactive"]["footer"]["text"].as_str().unwrap().chars().count() <= 60);
    // Every status the card can be closed with, as a short reply.
    for s in [
        Status::Denied {
            by: "<b>carol</b>".into(),
            at_ms: 0,
        },
        Status::Expired { at_ms: 0 },
    ] {
        let t = render::closing(&c, &s);
        assert!(!t.contains('\n') && t.len() < 500, "{t}");
    }
}

#[test]
fn template_variables_are_single_plain_lines() {
    let mut c = hostile_card();
    c.agent = "*bold*\n\nnew    line\t~x~ `y` _z_".into();
    let m = render::template("15551234567", "airlock_approval", "en_US", &c, &buttons(false), PUBLIC);
    let params = m["template"]["components"][0]["parameters"].as_array().unwrap();
    assert_eq!(params.len(), 5);
    for p in params {
        let s = p["text"].as_str().unwrap();
        assert!(!s.is_empty() && s.len() < 400, "{s}");
        assert!(
            !s.contains(['\n', '\t', '*', '_', '~', '`']) || s.starts_with(PUBLIC),
            "{s}"
        );
        assert!(!s.contains("     ") && !s.chars().any(is_deceptive), "{s:?}");
    }
    assert_eq!(params[1]["text"], "＊bold＊ new line ～x～ ｀y｀ ＿z＿");
    let payloads: Vec<&Value> = m["template"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "button")
        .map(|c| &c["parameters"][0]["payload"])
        .collect();
    assert_eq!(payloads, [&json!(buttons(false).approve), &json!(buttons(false).deny)]);
    // An ordinary card shows what an approver needs in the compact body.
    let ok = render::interactive("15551234567", &card(), &buttons(false), PUBLIC);
    let body = ok["interactive"]["body"]["text"].as_str().unwrap();
    for want in [
        "Send email",
        "Agent: build-bot",
        "POST https://api.mail.example/v3/send",
        "9f86d081884c",
    ] {
        assert!(body.contains(want), "{want} missing from {body}");
    }
}

fn channel() -> WhatsApp {
    WhatsApp::new(WhatsAppConfig {
        api_base: "http://127.0.0.1:9/v21.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: SecretBytes::new(b"token".to_vec()),
        app_secret: SecretBytes::new(b"app secret".to_vec()),
        verify_token: SecretBytes::new(b"verify".to_vec()),
        public_url: PUBLIC.into(),
        template: None,
        memory: Arc::new(Volatile::new()),
    })
}

fn press(ts: u64) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"metadata": {"phone_number_id": "106540352242922"},
            "messages": [{"from": "15551234567", "id": "wamid.P", "timestamp": ts.to_string(), "type": "interactive",
                "context": {"id": "wamid.CARD"},
                "interactive": {"type": "button_reply", "button_reply": {"id": "AbCdEf.a.1.x", "title": "Approve"}}}]}}]}]})
    .to_string()
}

fn signed(secret: &[u8], body: &str) -> http::HeaderMap {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
    m.update(body.as_bytes());
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-hub-signature-256",
        format!("sha256={}", hex::encode(m.finalize().into_bytes()))
            .parse()
            .unwrap(),
    );
    h
}

#[tokio::test]
async fn webhooks_are_authenticated_fresh_and_bound_to_their_card() {
    let w = channel();
    let body = press(1_700_000_000);
    let c = w
        .callback(&signed(b"app secret", &body), body.as_bytes(), 1_700_000_010)
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.channel, c.user.as_str(), c.token.as_str()),
        ("whatsapp", "15551234567", "AbCdEf.a.1.x")
    );
    assert_eq!(
        w.callback(&signed(b"other", &body), body.as_bytes(), 1_700_000_010),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        w.callback(&http::HeaderMap::new(), body.as_bytes(), 1_700_000_010),
        Err(CallbackError::MissingHeader("X-Hub-Signature-256"))
    );
    assert_eq!(
        w.callback(&signed(b"app secret", &body), body.as_bytes(), 1_700_001_000),
        Err(CallbackError::Stale)
    );
    // wamid.CARD is no card of ours: the press keeps no token.
    let resolved = w.resolve(c, 1_700_000_010).await.unwrap().unwrap();
    assert_eq!(resolved.token, "");
    assert_eq!(
        w.subscribe("hub.mode=subscribe&hub.verify_token=verify&hub.challenge=42")
            .as_deref(),
        Some("42")
    );
    assert_eq!(
        w.subscribe("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=42"),
        None
    );
}
