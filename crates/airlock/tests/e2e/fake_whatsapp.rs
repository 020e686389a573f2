//! A local WhatsApp Cloud API (Graph API) speaking what Meta's docs describe for
//! `POST /{phone_number_id}/messages`: bearer token, `messaging_product: "whatsapp"`,
//! interactive reply-button messages (1-3 buttons, ids ≤ 256 and titles ≤ 20 characters, both
//! unique; body ≤ 1,024, header and footer ≤ 60 characters), template messages (only the
//! approved template, its five body variables single-line, quick-reply payloads on buttons 0
//! and 1), text messages (≤ 4,096, `context.message_id` a message we sent). Free-form messages
//! reach only a number that wrote within 24 hours; otherwise the fake answers error 131047
//! (Meta may also report it later in a status webhook; the fake says so at once).
//!
//! Webhooks are built as Meta sends them and signed with `X-Hub-Signature-256`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;

pub const TOKEN: &str = "EAAG-wa-e2e-access-token-5f4e3d";
pub const APP_SECRET: &str = "wa-e2e-app-secret-0c9b8a";
pub const VERIFY: &str = "wa-e2e-verify-token-1d2e3f";
pub const PHONE_ID: &str = "106540352242922";
pub const TEMPLATE: &str = "airlock_approval";

#[derive(Default)]
struct St {
    /// Every accepted message, with the id it got.
    sent: Mutex<Vec<(String, Value)>>,
    /// wa_id → the last time they wrote (window open).
    window: Mutex<HashMap<String, u64>>,
    violations: Mutex<Vec<String>>,
    changed: Notify,
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn check_interactive(i: &Value) -> Result<(), String> {
    if i["type"] != "button" {
        return Err("interactive.type must be button".into());
    }
    let body = chars(&i["body"]["text"]);
    if body == 0 || body > 1024 {
        return Err(format!("body.text has {body} characters (1-1024)"));
    }
    if i.get("header").is_some() && (i["header"]["type"] != "text" || chars(&i["header"]["text"]) > 60) {
        return Err("header must be text of at most 60 characters".into());
    }
    if i.get("footer").is_some() && chars(&i["footer"]["text"]) > 60 {
        return Err("footer.text over 60 characters".into());
    }
    let buttons = i["action"]["buttons"].as_array().ok_or("no action.buttons")?;
    if buttons.is_empty() || buttons.len() > 3 {
        return Err(format!("{} buttons (1-3)", buttons.len()));
    }
    let mut ids = Vec::new();
    let mut titles = Vec::new();
    for b in buttons {
        let (id, title) = (&b["reply"]["id"], &b["reply"]["title"]);
        if b["type"] != "reply" || !(1..=256).contains(&chars(id)) || !(1..=20).contains(&chars(title)) {
            return Err(format!("bad button {b}"));
        }
        ids.push(id.clone());
        titles.push(title.clone());
    }
    ids.dedup();
    titles.dedup();
    if ids.len() != buttons.len() || titles.len() != buttons.len() {
        return Err("button ids and titles must be unique".into());
    }
    Ok(())
}

fn check_template(t: &Value) -> Result<(), String> {
    if t["name"] != TEMPLATE || !t["language"]["code"].is_string() {
        return Err(format!("template {} is not approved", t["name"]));
    }
    let comps = t["components"].as_array().ok_or("no components")?;
    let body = comps.iter().find(|c| c["type"] == "body").ok_or("no body component")?;
    let params = body["parameters"].as_array().ok_or("no body parameters")?;
    if params.len() != 5 {
        return Err(format!("the template has 5 variables, got {}", params.len()));
    }
    for p in params {
        let s = p["text"].as_str().unwrap_or_default();
        if p["type"] != "text" || s.is_empty() || s.contains(['\n', '\t']) || s.contains("     ") {
            return Err(format!("bad variable {p}"));
        }
    }
    let buttons: Vec<&Value> = comps.iter().filter(|c| c["type"] == "button").collect();
    for (i, b) in buttons.iter().enumerate() {
        let index = i.to_string();
        if b["sub_type"] != "quick_reply" || b["index"] != index.as_str() || !b["parameters"][0]["payload"].is_string()
        {
            return Err(format!("bad quick reply {b}"));
        }
    }
    if buttons.len() != 2 {
        return Err("the approved template has two quick replies".into());
    }
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn messages(
    State(st): State<Arc<St>>,
    Path(phone): Path<String>,
    h: HeaderMap,
    Json(m): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let refuse = |code: i64, why: String| {
        st.violations.lock().unwrap().push(why.clone());
        st.changed.notify_waiters();
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": why, "type": "OAuthException", "code": code, "fbtrace_id": "x"}})),
        )
    };
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return refuse(190, "invalid access token".into());
    }
    if phone != PHONE_ID {
        return refuse(100, format!("unknown phone number id {phone}"));
    }
    let to = m["to"].as_str().unwrap_or_default().to_string();
    if m["messaging_product"] != "whatsapp" || to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        return refuse(100, format!("bad envelope {m}"));
    }
    let checked = match m["type"].as_str() {
        Some("interactive") => check_interactive(&m["interactive"]),
        Some("template") => check_template(&m["template"]),
        Some("text") => {
            let n = chars(&m["text"]["body"]);
            let known = |id: &Value| st.sent.lock().unwrap().iter().any(|(i, _)| id == i.as_str());
            if n == 0 || n > 4096 {
                Err(format!("text.body has {n} characters"))
            } else if m.get("context").is_some() && !known(&m["context"]["message_id"]) {
                Err("context.message_id is not a message of ours".into())
            } else {
                Ok(())
            }
        }
        other => Err(format!("unsupported type {other:?}")),
    };
    if let Err(e) = checked {
        return refuse(100, e);
    }
    let open = st
        .window
        .lock()
        .unwrap()
        .get(&to)
        .is_some_and(|t| now() - t < 24 * 3600);
    if m["type"] != "template" && !open {
        // Not a violation: what Meta answers outside the window.
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "Re-engagement message", "code": 131047}})),
        );
    }
    let id = {
        let mut sent = st.sent.lock().unwrap();
        let id = format!("wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI{}", sent.len());
        sent.push((id.clone(), m));
        id
    };
    st.changed.notify_waiters();
    (
        StatusCode::OK,
        Json(
            json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": id}]}),
        ),
    )
}

pub struct FakeWhatsApp {
    pub api_base: String,
    st: Arc<St>,
}

impl FakeWhatsApp {
    pub async fn start() -> FakeWhatsApp {
        let st = Arc::new(St::default());
        let app = axum::Router::new()
            .route("/v21.0/{phone}/messages", post(messages))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_base = format!("http://{}/v21.0", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeWhatsApp { api_base, st }
    }

    /// `wa_id` wrote to the business number just now: free-form messages reach them.
    pub fn open_window(&self, wa_id: &str) {
        self.st.window.lock().unwrap().insert(wa_id.to_string(), now());
    }

    /// Every message sent: (message id, body).
    pub fn sent(&self) -> Vec<(String, Value)> {
        self.st.sent.lock().unwrap().clone()
    }

    /// Every message sent to `to`: (message id, body).
    pub fn sent_to(&self, to: &str) -> Vec<(String, Value)> {
        self.st
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m["to"] == to)
            .cloned()
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }

    /// Waits (bounded, no sleeping) until `pred` holds.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&FakeWhatsApp) -> bool) {
        super::wait_notified(&self.st.changed, what, || pred(self), || self.violations()).await;
    }

    /// The webhook Meta posts when `from` presses a button on message `card`: an interactive
    /// `button_reply`, or (`template`) a quick reply.
    pub fn press(from: &str, card: &str, payload: &str, template: bool, timestamp: u64) -> String {
        let mut m = json!({"from": from, "id": format!("wamid.press{timestamp}{}", &payload[..4.min(payload.len())]),
            "timestamp": timestamp.to_string(), "context": {"from": "15550000000", "id": card}});
        if template {
            m["type"] = json!("button");
            m["button"] = json!({"payload": payload, "text": "Approve"});
        } else {
            m["type"] = json!("interactive");
            m["interactive"] = json!({"type": "button_reply", "button_reply": {"id": payload, "title": "Approve"}});
        }
        Self::envelope(from, m)
    }

    /// A text message from `from`.
    pub fn text(from: &str, body: &str) -> String {
        let m = json!({"from": from, "id": format!("wamid.text{}", now()), "timestamp": now().to_string(),
            "type": "text", "text": {"body": body}});
        Self::envelope(from, m)
    }

    fn envelope(from: &str, message: Value) -> String {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
            "field": "messages",
            "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_ID},
                "contacts": [{"profile": {"name": "Someone"}, "wa_id": from}],
                "messages": [message]}}]}]})
        .to_string()
    }
}

/// `X-Hub-Signature-256` for `body`.
pub fn sign(secret: &str, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body.as_bytes());
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

pub fn now_secs() -> u64 {
    now()
}
