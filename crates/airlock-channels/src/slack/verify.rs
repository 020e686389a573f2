//! Inbound interactions: Slack's request signature ("Verifying requests from Slack") and the
//! `block_actions` payload → [`Click`] extraction shared by HTTP callbacks and Socket Mode.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::render::{ACTION_APPROVE, ACTION_DENY, ACTION_GRANT, BUTTON_VALUE_MAX};
use crate::{CallbackError, Click};

pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
/// Slack's documented replay window: requests more than five minutes off are refused.
pub const MAX_SKEW_SECS: u64 = 300;
/// Longest Slack id (user, channel) or `ts` we accept; real ones are about a dozen characters.
const MAX_ID: usize = 64;
const MAX_URL: usize = 2048;

/// Checks `signature` (`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the signing
/// secret) over the raw body, and that `timestamp` is within five minutes of `now_secs`.
///
/// A replay inside the window verifies: single use of a click is enforced by the approvals
/// hub (one vote per person, signed button tokens bound to the request), not here.
pub fn verify_signature(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_secs: u64,
) -> Result<(), CallbackError> {
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| CallbackError::MissingHeader(TIMESTAMP_HEADER))?;
    if now_secs.abs_diff(ts) > MAX_SKEW_SECS {
        return Err(CallbackError::Stale);
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(CallbackError::BadSignature)?;
    // A key of any length is valid for HMAC, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&given).map_err(|_| CallbackError::BadSignature)
}

fn header<'a>(headers: &'a http::HeaderMap, name: &'static str) -> Result<&'a str, CallbackError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(CallbackError::MissingHeader(name))
}

/// The `payload` field of an `application/x-www-form-urlencoded` body, decoded.
fn form_payload(body: &[u8]) -> Result<String, CallbackError> {
    for pair in body.split(|&b| b == b'&') {
        let Some(value) = pair.strip_prefix(b"payload=") else {
            continue;
        };
        // '+' means space in forms; a literal '+' arrives as %2B, so replace before decoding.
        let value: Vec<u8> = value.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        return percent_encoding::percent_decode(&value)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| CallbackError::Malformed("payload is not UTF-8".into()));
    }
    Err(CallbackError::Malformed("no payload field".into()))
}

/// Authenticates an interactivity request and extracts the click, if it is one of ours.
pub(crate) fn callback(
    secret: &[u8],
    headers: &http::HeaderMap,
    body: &[u8],
    now_secs: u64,
) -> Result<Option<Click>, CallbackError> {
    let ts = header(headers, TIMESTAMP_HEADER)?;
    let sig = header(headers, SIGNATURE_HEADER)?;
    verify_signature(secret, ts, body, sig, now_secs)?;
    let payload = form_payload(body)?;
    let v: Value =
        serde_json::from_str(&payload).map_err(|e| CallbackError::Malformed(format!("payload is not JSON: {e}")))?;
    click_from_payload(&v)
}

fn short_str(v: &Value, max: usize) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty() && s.len() <= max)
}

fn malformed(what: &str) -> CallbackError {
    CallbackError::Malformed(what.to_string())
}

/// `block_actions` on one of our buttons → a [`Click`]; other interaction types → `None`.
/// The payload must already be authenticated (signature or Socket Mode).
pub(crate) fn click_from_payload(v: &Value) -> Result<Option<Click>, CallbackError> {
    let Some(kind) = v.get("type").and_then(Value::as_str) else {
        return Err(malformed("payload has no type"));
    };
    if kind != "block_actions" {
        return Ok(None);
    }
    let user = short_str(&v["user"]["id"], MAX_ID).ok_or_else(|| malformed("no user.id"))?;
    let action = v["actions"]
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| malformed("no actions"))?;
    // Only our own buttons carry tokens; anything else on the message is not a vote.
    let action_id = action["action_id"].as_str().unwrap_or_default();
    if ![ACTION_APPROVE, ACTION_DENY, ACTION_GRANT].contains(&action_id) {
        return Ok(None);
    }
    let token = short_str(&action["value"], BUTTON_VALUE_MAX).ok_or_else(|| malformed("no actions[0].value"))?;
    let response_url = short_str(&v["response_url"], MAX_URL);
    let channel = short_str(&v["channel"]["id"], MAX_ID).or_else(|| short_str(&v["container"]["channel_id"], MAX_ID));
    let message_ts = short_str(&v["container"]["message_ts"], MAX_ID);
    Ok(Some(Click {
        done: Default::default(),
        channel: "slack",
        user: user.to_string(),
        token: token.to_string(),
        ack: json!({"response_url": response_url, "channel": channel, "message_ts": message_ts}),
    }))
}
