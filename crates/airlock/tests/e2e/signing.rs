//! Platform callbacks as the platforms build them, written here from their documentation
//! (not with airlock's own signing code): Slack's `v0` request signatures over a form-encoded
//! `payload`, and Standard Webhooks signatures.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::Gateway;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `X-Slack-Signature`: `v0=` + hex HMAC-SHA256 of `v0:{ts}:{body}` under the signing secret.
pub fn slack_signature(secret: &str, ts: u64, body: &str) -> String {
    let mac = hmac(
        secret.as_bytes(),
        &[b"v0:", ts.to_string().as_bytes(), b":", body.as_bytes()],
    );
    format!("v0={}", hex::encode(mac))
}

/// `application/x-www-form-urlencoded` with one field, `payload`, as Slack posts it.
pub fn slack_form(payload: &Value) -> String {
    let mut out = String::from("payload=");
    for b in payload.to_string().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A `block_actions` interaction: `user` pressed the button `action_id` carrying `token`.
pub fn block_actions(user: &str, action_id: &str, token: &str, response_url: &str) -> Value {
    json!({
        "type": "block_actions",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "container": {"type": "message", "message_ts": super::fake_slack::TS, "channel_id": super::fake_slack::DM},
        "channel": {"id": super::fake_slack::DM, "name": "directmessage"},
        "response_url": response_url,
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": "airlock_actions",
            "value": token,
            "action_ts": "1700000005.000300",
        }],
    })
}

/// The Socket Mode envelope Slack pushes for an interaction.
pub fn interactive(envelope_id: &str, payload: Value) -> Value {
    json!({
        "envelope_id": envelope_id,
        "type": "interactive",
        "accepts_response_payload": false,
        "payload": payload,
    })
}

/// POSTs a Slack interactivity request to the gateway's control listener.
pub async fn post_slack(gw: &Gateway, body: &str, ts: u64, signature: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/callbacks/slack", gw.control))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", ts.to_string())
        .header("X-Slack-Signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// The raw key of a `whsec_<base64>` secret.
pub fn webhook_key(secret: &str) -> Vec<u8> {
    STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap()
}

/// `webhook-signature`: `v1,` + base64 HMAC-SHA256 of `{id}.{ts}.{body}`.
pub fn webhook_signature(key: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
    let mac = hmac(key, &[id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// Checks a Standard Webhooks delivery: the three headers, a timestamp within five minutes,
/// and one of the space-separated `v1` signatures matching.
pub fn webhook_verify(key: &[u8], headers: &http::HeaderMap, body: &[u8]) -> Result<(), String> {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {n} header"))
    };
    let id = get("webhook-id")?;
    let ts: u64 = get("webhook-timestamp")?.parse().map_err(|_| "bad timestamp")?;
    if now_secs().abs_diff(ts) > 300 {
        return Err("timestamp outside the tolerance".into());
    }
    let want = webhook_signature(key, id, ts, body);
    if get("webhook-signature")?.split(' ').any(|s| s == want) {
        Ok(())
    } else {
        Err("no signature matches".into())
    }
}

/// POSTs a click to `/callbacks/webhook`: `sign` = Some(key) signs it, `tamper` changes the
/// body after signing.
pub async fn post_webhook(
    gw: &Gateway,
    body: &Value,
    sign: Option<&[u8]>,
    tamper: Option<&Value>,
) -> reqwest::Response {
    let raw = serde_json::to_vec(body).unwrap();
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/callbacks/webhook", gw.control))
        .header("content-type", "application/json");
    if let Some(key) = sign {
        let (id, ts) = ("msg_e2eclick1", now_secs());
        req = req
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", webhook_signature(key, id, ts, &raw));
    }
    let sent = tamper.map_or(raw, |t| serde_json::to_vec(t).unwrap());
    req.body(sent).send().await.unwrap()
}
