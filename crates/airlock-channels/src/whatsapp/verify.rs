//! Inbound WhatsApp Cloud API webhooks, as pure functions of (headers, body, now, keys):
//!
//! - [`verify_signature`]: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body
//!   with the app secret, compared in constant time.
//! - [`inbound`]: the `whatsapp_business_account` envelope → the button presses in it (an
//!   interactive `button_reply`, or a template's quick reply, type `button`), each with its
//!   sender's `wa_id`, the pressed button's payload (our signed token) and the `context.id` of
//!   the card it was pressed on; and every sender seen (their 24-hour window is open).
//! - [`subscribe`]: the `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` handshake.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::CallbackError;
use crate::token::ct_eq;

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// Meta's webhooks are a few KiB; larger bodies are not theirs.
pub const MAX_BODY: usize = 256 * 1024;
/// A press older than this (by the message's own `timestamp`) is refused as stale: Meta retries
/// a failed delivery for days, and a vote that late is no longer the approver's answer.
pub const MAX_AGE_SECS: u64 = 600;

/// A button pressed on one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    /// The sender's WhatsApp id (their number, digits only), as Meta reports it.
    pub from: String,
    /// The button's payload: a signed token (unverified here).
    pub token: String,
    /// The id (`wamid…`) of the message the button was on.
    pub context: Option<String>,
    /// The press's own message id.
    pub message: String,
    pub timestamp: u64,
}

/// What one webhook delivery carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    pub presses: Vec<Press>,
    /// (wa_id, timestamp) of every message received: the 24-hour customer-service window of
    /// each is open.
    pub seen: Vec<(String, u64)>,
    /// (recipient wa_id, error code) of every message Meta reports it could not deliver (131047:
    /// outside the 24-hour window).
    pub failed: Vec<(String, i64)>,
}

/// WhatsApp ids are phone numbers in international form, digits only.
pub fn is_wa_id(s: &str) -> bool {
    (6..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Message ids (`wamid.HBgL…`): base64 with a prefix.
pub fn is_message_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-=+/".contains(&b))
}

/// Checks `X-Hub-Signature-256` over the raw body.
pub fn verify_signature(app_secret: &[u8], headers: &http::HeaderMap, body: &[u8]) -> Result<(), CallbackError> {
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(CallbackError::MissingHeader(SIGNATURE_HEADER))?;
    let hex_sig = sig.trim().strip_prefix("sha256=").ok_or(CallbackError::BadSignature)?;
    let given = hex::decode(hex_sig).map_err(|_| CallbackError::BadSignature)?;
    // A key of any length is valid for HMAC, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| CallbackError::BadSignature)
}

/// Reads a signed envelope. Only changes for `phone_number_id` (our number) count: an app with
/// several numbers delivers all of them to one URL.
pub fn inbound(body: &[u8], phone_number_id: &str) -> Result<Inbound, CallbackError> {
    if body.len() > MAX_BODY {
        return Err(CallbackError::Malformed(format!("body over {MAX_BODY} bytes")));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(format!("body is not JSON: {e}")))?;
    if v["object"] != "whatsapp_business_account" {
        return Err(CallbackError::Malformed(
            "not a whatsapp_business_account webhook".into(),
        ));
    }
    let mut out = Inbound::default();
    let changes = v["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten());
    for change in changes {
        let value = &change["value"];
        if change["field"] != "messages" || value["metadata"]["phone_number_id"] != phone_number_id {
            continue;
        }
        for st in value["statuses"].as_array().into_iter().flatten() {
            if st["status"] == "failed"
                && let Some(to) = st["recipient_id"].as_str().filter(|t| is_wa_id(t))
            {
                let code = st["errors"][0]["code"].as_i64().unwrap_or(0);
                out.failed.push((to.to_string(), code));
            }
        }
        for m in value["messages"].as_array().into_iter().flatten() {
            let (Some(from), Some(id), Some(ts)) = (
                m["from"].as_str().filter(|f| is_wa_id(f)),
                m["id"].as_str().filter(|i| is_message_id(i)),
                m["timestamp"].as_str().and_then(|t| t.parse::<u64>().ok()),
            ) else {
                continue;
            };
            out.seen.push((from.to_string(), ts));
            let payload = match m["type"].as_str() {
                Some("interactive") if m["interactive"]["type"] == "button_reply" => {
                    m["interactive"]["button_reply"]["id"].as_str()
                }
                Some("button") => m["button"]["payload"].as_str(),
                _ => None,
            };
            let Some(token) = payload else { continue };
            if token.is_empty() || token.len() > crate::token::MAX_LEN {
                continue;
            }
            out.presses.push(Press {
                from: from.to_string(),
                token: token.to_string(),
                context: m["context"]["id"]
                    .as_str()
                    .filter(|c| is_message_id(c))
                    .map(str::to_string),
                message: id.to_string(),
                timestamp: ts,
            });
        }
    }
    Ok(out)
}

/// The subscription handshake: for `hub.mode=subscribe` with our verify token, the
/// `hub.challenge` to echo (digits and letters only, at most 128); `None` otherwise.
pub fn subscribe(query: &str, verify_token: &[u8]) -> Option<String> {
    let mut mode = None;
    let mut token = None;
    let mut challenge = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = crate::card::form_decode(v);
        match k {
            "hub.mode" => mode = Some(v),
            "hub.verify_token" => token = Some(v),
            "hub.challenge" => challenge = Some(v),
            _ => {}
        }
    }
    let ok = mode.as_deref() == Some("subscribe") && token.is_some_and(|t| ct_eq(t.as_bytes(), verify_token));
    challenge.filter(|c| ok && !c.is_empty() && c.len() <= 128 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signed(secret: &[u8], body: &[u8]) -> http::HeaderMap {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        m.update(body);
        let mut h = http::HeaderMap::new();
        h.insert(
            SIGNATURE_HEADER,
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
                .parse()
                .unwrap(),
        );
        h
    }

    /// RFC 4231 test case 2 (HMAC-SHA256, key "Jefe").
    #[test]
    fn rfc4231_vector_and_signatures() {
        let body = b"what do ya want for nothing?";
        let mut h = http::HeaderMap::new();
        h.insert(
            SIGNATURE_HEADER,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
                .parse()
                .unwrap(),
        );
        assert_eq!(verify_signature(b"Jefe", &h, body), Ok(()));
        assert_eq!(verify_signature(b"Jeff", &h, body), Err(CallbackError::BadSignature));
        assert_eq!(
            verify_signature(b"Jefe", &h, b"what do ya want for nothing!"),
            Err(CallbackError::BadSignature)
        );
        let mut bare = http::HeaderMap::new();
        bare.insert(
            SIGNATURE_HEADER,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
                .parse()
                .unwrap(),
        );
        assert_eq!(verify_signature(b"Jefe", &bare, body), Err(CallbackError::BadSignature));
        assert_eq!(
            verify_signature(b"Jefe", &http::HeaderMap::new(), body),
            Err(CallbackError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(verify_signature(b"s", &signed(b"s", b"{}"), b"{}"), Ok(()));
    }

    fn envelope(phone: &str, messages: Value) -> Vec<u8> {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
            "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone},
                "contacts": [{"profile": {"name": "Alice"}, "wa_id": "15551234567"}],
                "messages": messages}}]}]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn presses_carry_sender_token_and_card() {
        let body = envelope(
            "PHONE1",
            json!([
                {"from": "15551234567", "id": "wamid.B", "timestamp": "1700000000", "type": "interactive",
                 "context": {"from": "15550000000", "id": "wamid.CARD"},
                 "interactive": {"type": "button_reply", "button_reply": {"id": "tok.a.1.x", "title": "Approve"}}},
                {"from": "15551234567", "id": "wamid.T", "timestamp": "1700000001", "type": "button",
                 "context": {"from": "15550000000", "id": "wamid.TPL"},
                 "button": {"payload": "tok.d.1.y", "text": "Deny"}},
                {"from": "15557654321", "id": "wamid.X", "timestamp": "1700000002", "type": "text",
                 "text": {"body": "approve"}},
            ]),
        );
        let got = inbound(&body, "PHONE1").unwrap();
        assert_eq!(got.presses.len(), 2);
        assert_eq!(
            got.presses[0],
            Press {
                from: "15551234567".into(),
                token: "tok.a.1.x".into(),
                context: Some("wamid.CARD".into()),
                message: "wamid.B".into(),
                timestamp: 1_700_000_000
            }
        );
        assert_eq!(got.presses[1].token, "tok.d.1.y");
        assert_eq!(got.seen.len(), 3);
        // Another number of the same app: nothing of ours.
        assert_eq!(inbound(&body, "PHONE2").unwrap(), Inbound::default());
        assert!(inbound(b"{}", "PHONE1").is_err());
        assert!(inbound(b"not json", "PHONE1").is_err());
        // Status updates carry no messages.
        let statuses = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
            "value": {"metadata": {"phone_number_id": "PHONE1"}, "statuses": [{"id": "wamid.S", "status": "read"}]}}]}]});
        assert_eq!(
            inbound(statuses.to_string().as_bytes(), "PHONE1").unwrap(),
            Inbound::default()
        );
        let failed = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
            "value": {"metadata": {"phone_number_id": "PHONE1"}, "statuses": [{"id": "wamid.S", "status": "failed",
                "recipient_id": "15551234567", "errors": [{"code": 131047, "title": "Re-engagement message"}]}]}}]}]});
        assert_eq!(
            inbound(failed.to_string().as_bytes(), "PHONE1").unwrap().failed,
            vec![("15551234567".to_string(), 131_047)]
        );
    }

    #[test]
    fn the_handshake_needs_our_verify_token() {
        let q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock";
        assert_eq!(subscribe(q, b"meatyhamhock").as_deref(), Some("1158201444"));
        assert_eq!(subscribe(q, b"meatyhamhoc"), None);
        assert_eq!(
            subscribe(
                "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=meatyhamhock",
                b"meatyhamhock"
            ),
            None
        );
        assert_eq!(
            subscribe(
                "hub.mode=subscribe&hub.challenge=%3Cscript%3E&hub.verify_token=meatyhamhock",
                b"meatyhamhock"
            ),
            None,
            "only plain challenges are echoed"
        );
        assert_eq!(subscribe("", b""), None);
    }
}
