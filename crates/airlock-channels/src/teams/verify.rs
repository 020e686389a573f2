//! Inbound Bot Framework activities: authentication and what they mean. Pure: the signing
//! keys and the clock are arguments ([`crate::jwks`] fetches the keys).
//!
//! An activity counts only when its `Authorization: Bearer` JWT verifies with a Bot Framework
//! key (RS256), names the Bot Framework as issuer and this bot's app id as audience, is within
//! its lifetime (5 minutes of skew), was signed by a key endorsed for Teams, and carries a
//! `serviceUrl` claim equal to the activity's `serviceUrl`, the address replies will go to.

use serde_json::{Map, Value, json};

use crate::jwt::{self, Expect, Jwk, JwtError, SKEW_SECS};
use crate::{CallbackError, adaptive};

pub const ISSUER: &str = "https://api.botframework.com";
/// The Bot Framework channel id of Microsoft Teams.
pub const CHANNEL_ID: &str = "msteams";
/// The invoke name of an `Action.Execute` press.
pub const INVOKE_ACTION: &str = "adaptiveCard/action";
const TOKEN_MAX: usize = 1024;

/// What an authenticated activity is to airlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A press: who (`from.aadObjectId`), which token, and where to answer.
    Click { user: String, token: String, ack: Value },
    /// A person wrote to the bot or installed it in their personal scope: where their cards go.
    Reference { user: String, reference: Value },
    /// Anything else (typing, reactions, group chats): answered with an empty 200.
    Other,
}

/// `Authorization: Bearer <jwt>`.
pub fn bearer(headers: &http::HeaderMap) -> Result<&str, CallbackError> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(CallbackError::MissingHeader("authorization"))
}

fn refused(e: JwtError) -> CallbackError {
    match e {
        JwtError::Expired | JwtError::NotYetValid => CallbackError::Stale,
        _ => CallbackError::BadSignature,
    }
}

/// Authenticates an activity POSTed by the Bot Framework to this bot (`app_id`), with the
/// Bot Framework's signing `keys` at `now_secs`. Returns the activity.
pub fn verify(
    headers: &http::HeaderMap,
    body: &[u8],
    keys: &[Jwk],
    app_id: &str,
    now_secs: u64,
) -> Result<Value, CallbackError> {
    let token = bearer(headers)?;
    let expect = Expect {
        issuers: &[ISSUER],
        audience: app_id,
        skew_secs: SKEW_SECS,
    };
    let verified = jwt::verify(token, keys, &expect, now_secs).map_err(refused)?;
    let activity: Value =
        serde_json::from_slice(body).map_err(|_| CallbackError::Malformed("the activity is not JSON".into()))?;
    check_claims(&verified.claims, verified.key, &activity)?;
    Ok(activity)
}

/// The claims of a verified token against the activity it came with.
pub fn check_claims(claims: &Map<String, Value>, key: &Jwk, activity: &Value) -> Result<(), CallbackError> {
    let claimed = claims
        .get("serviceurl")
        .or_else(|| claims.get("serviceUrl"))
        .and_then(Value::as_str);
    let service = activity["serviceUrl"].as_str();
    if claimed.is_none() || claimed != service {
        return Err(CallbackError::BadSignature);
    }
    let channel = activity["channelId"].as_str().unwrap_or_default();
    if let Some(e) = &key.endorsements
        && !e.iter().any(|e| e == channel)
    {
        return Err(CallbackError::BadSignature);
    }
    if channel != CHANNEL_ID {
        return Err(CallbackError::Malformed(format!(
            "not a Teams activity: channelId {channel:?}"
        )));
    }
    Ok(())
}

/// A Microsoft Entra object id (a GUID), or a test's stand-in of the same alphabet.
pub fn is_object_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A conversation or activity id: printable, no spaces (they separate a [`crate::MessageRef`]).
pub fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// An https (or, for local fakes, loopback http) service URL.
pub fn is_service_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://127.0.0.1:") || s.starts_with("http://localhost:"))
        && s.len() <= 512
        && s.bytes().all(|b| b.is_ascii_graphic())
}

/// What `activity` (already authenticated) means. `tenant`: the only tenant accepted, if set.
pub fn inbound(activity: &Value, tenant: Option<&str>) -> Result<Inbound, CallbackError> {
    let malformed = |m: &str| CallbackError::Malformed(m.to_string());
    let conv = &activity["conversation"];
    if let Some(t) = tenant {
        let theirs = conv["tenantId"]
            .as_str()
            .or(activity["channelData"]["tenant"]["id"].as_str());
        if theirs != Some(t) {
            return Err(malformed("the activity comes from another Microsoft Entra tenant"));
        }
    }
    let service = activity["serviceUrl"].as_str().filter(|s| is_service_url(s));
    let conv_id = conv["id"].as_str().filter(|c| is_id(c));
    // Entra object ids are GUIDs: compared lower-case, as `[people.NAME] teams` is read.
    let user = activity["from"]["aadObjectId"]
        .as_str()
        .filter(|u| is_object_id(u))
        .map(str::to_ascii_lowercase);
    let (Some(service), Some(conv_id)) = (service, conv_id) else {
        return Err(malformed("no serviceUrl or conversation id"));
    };
    let kind = activity["type"].as_str().unwrap_or_default();
    let pressed = match kind {
        "invoke" if activity["name"] == INVOKE_ACTION => Some((&activity["value"]["action"]["data"], true)),
        "message" if activity["value"].is_object() => Some((&activity["value"], false)),
        _ => None,
    };
    if let Some((data, invoke)) = pressed {
        let Some(token) = data[adaptive::TOKEN_FIELD]
            .as_str()
            .filter(|t| !t.is_empty() && t.len() <= TOKEN_MAX)
        else {
            return Ok(Inbound::Other);
        };
        let Some(user) = user else {
            return Err(malformed("the press names no aadObjectId"));
        };
        let activity_id = activity["replyToId"].as_str().filter(|a| is_id(a));
        return Ok(Inbound::Click {
            user,
            token: token.to_string(),
            ack: json!({"service": service, "conversation": conv_id, "activity": activity_id, "invoke": invoke}),
        });
    }
    let personal = conv["conversationType"] == "personal";
    match (kind, user) {
        ("message" | "conversationUpdate" | "installationUpdate", Some(user)) if personal => Ok(Inbound::Reference {
            user,
            reference: json!({"service": service, "conversation": conv_id}),
        }),
        _ => Ok(Inbound::Other),
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
