//! Google Chat interaction events posted to `/callbacks/gchat`: authentication and what they
//! mean. Pure: the signing keys and the clock are arguments ([`crate::jwks`] fetches them).
//!
//! Google signs every event with a bearer token whose kind depends on the app's
//! "Authentication Audience": with **Project number**, a JWT issued by
//! `chat@system.gserviceaccount.com` whose audience is the project number; with **HTTP
//! endpoint URL**, a Google OIDC ID token (issuer `https://accounts.google.com`) whose audience
//! is the endpoint URL and whose verified `email` is `chat@system.gserviceaccount.com`.

use serde_json::{Value, json};

use crate::CallbackError;
use crate::jwt::{self, Expect, Jwk, JwtError, SKEW_SECS};

pub const CHAT_ISSUER: &str = "chat@system.gserviceaccount.com";
pub const GOOGLE_ISSUERS: &[&str] = &["https://accounts.google.com", "accounts.google.com"];
/// The keys of Chat's own tokens (project-number audience).
pub const CHAT_JWKS: &str = "https://www.googleapis.com/service_accounts/v1/jwk/chat@system.gserviceaccount.com";
/// Google's OIDC keys (endpoint-URL audience).
pub const GOOGLE_JWKS: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The `function` of our buttons' actions, and the parameter holding the token.
pub const FUNCTION: &str = "airlock";
pub const PARAM: &str = "token";
const TOKEN_MAX: usize = 1024;

/// What the app's tokens are addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The Cloud project number (digits).
    ProjectNumber(String),
    /// The HTTP endpoint URL configured for the app.
    Endpoint(String),
}

impl Audience {
    /// Digits are a project number; anything else the endpoint URL.
    pub fn parse(s: &str) -> Audience {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            Audience::ProjectNumber(s.to_string())
        } else {
            Audience::Endpoint(s.to_string())
        }
    }

    /// Where this audience's signing keys are published.
    pub fn default_jwks(&self) -> &'static str {
        match self {
            Audience::ProjectNumber(_) => CHAT_JWKS,
            Audience::Endpoint(_) => GOOGLE_JWKS,
        }
    }
}

/// What an authenticated event is to airlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A press of one of our buttons: who (`user.name`), which token, where.
    Click {
        user: String,
        token: String,
        ack: Value,
    },
    Other,
}

/// `users/123…`: a Chat user resource name.
pub fn is_user(s: &str) -> bool {
    s.strip_prefix("users/")
        .is_some_and(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `spaces/AAA…` or `spaces/AAA/messages/BBB.CCC`: a resource name of ours to put in a path.
pub fn is_name(s: &str, prefix: &str) -> bool {
    s.starts_with(prefix)
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
        && !s.contains("..")
        && !s.contains("//")
}

/// Authenticates an event with Google's `keys` for `audience` at `now_secs`; returns the event.
pub fn verify(
    headers: &http::HeaderMap,
    body: &[u8],
    keys: &[Jwk],
    audience: &Audience,
    now_secs: u64,
) -> Result<Value, CallbackError> {
    let token = crate::teams::verify::bearer(headers)?;
    let (issuers, aud) = match audience {
        Audience::ProjectNumber(n) => (&[CHAT_ISSUER][..], n.as_str()),
        Audience::Endpoint(u) => (GOOGLE_ISSUERS, u.as_str()),
    };
    let expect = Expect {
        issuers,
        audience: aud,
        skew_secs: SKEW_SECS,
    };
    let v = jwt::verify(token, keys, &expect, now_secs).map_err(|e| match e {
        JwtError::Expired | JwtError::NotYetValid => CallbackError::Stale,
        _ => CallbackError::BadSignature,
    })?;
    if let Audience::Endpoint(_) = audience
        && (v.claims.get("email").and_then(Value::as_str) != Some(CHAT_ISSUER)
            || v.claims.get("email_verified") != Some(&Value::Bool(true)))
    {
        // Any Google account can get an ID token for any audience: only Chat's counts.
        return Err(CallbackError::BadSignature);
    }
    serde_json::from_slice(body).map_err(|_| CallbackError::Malformed("the event is not JSON".into()))
}

/// What `event` (already authenticated) means.
pub fn inbound(event: &Value) -> Inbound {
    let card_clicked = event["type"] == "CARD_CLICKED";
    let function = event["common"]["invokedFunction"]
        .as_str()
        .or(event["action"]["actionMethodName"].as_str());
    if !card_clicked || function != Some(FUNCTION) {
        return Inbound::Other;
    }
    let from_list = event["action"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["key"] == PARAM)
        .and_then(|p| p["value"].as_str());
    let token = event["common"]["parameters"][PARAM].as_str().or(from_list);
    let user = event["user"]["name"].as_str().filter(|u| is_user(u));
    let human = event["user"]["type"].as_str().is_none_or(|t| t == "HUMAN");
    match (token.filter(|t| !t.is_empty() && t.len() <= TOKEN_MAX), user) {
        (Some(token), Some(user)) if human => Inbound::Click {
            user: user.to_string(),
            token: token.to_string(),
            ack: json!({"space": event["space"]["name"], "message": event["message"]["name"]}),
        },
        _ => Inbound::Other,
    }
}

/// The click an authenticated event is, if any.
pub fn click(event: &Value) -> Option<crate::Click> {
    match inbound(event) {
        Inbound::Click { user, token, ack } => Some(crate::Click {
            channel: "gchat",
            user,
            token,
            ack,
            done: Default::default(),
        }),
        Inbound::Other => None,
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
