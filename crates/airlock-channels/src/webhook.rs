//! A generic signed-webhook channel following the Standard Webhooks spec
//! (<https://www.standardwebhooks.com>): each delivery carries `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`,
//! with the key given as `whsec_<base64>`. The receiving system posts clicks back to
//! `/callbacks/webhook` signed the same way with the same key.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_vault::SecretBytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};

const NAME: &str = "webhook";
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// Accepted clock difference either way (the spec's recommended tolerance).
pub const TOLERANCE_SECS: u64 = 5 * 60;
/// Key sizes the spec allows for symmetric secrets: 24 to 64 bytes.
const KEY_LEN: std::ops::RangeInclusive<usize> = 24..=64;
/// Longest user id or token accepted in a callback; real ones are far shorter.
const MAX_FIELD: usize = 256;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// Raw key bytes, decoded from `whsec_…` by [`parse_secret`].
    pub secret: SecretBytes,
}

/// Decodes a `whsec_<base64>` secret. Errors never include the secret.
pub fn parse_secret(s: &str) -> Result<SecretBytes, String> {
    let Some(b64) = s.trim().strip_prefix("whsec_") else {
        return Err("webhook secret must start with whsec_".into());
    };
    let key = SecretBytes::new(
        STANDARD
            .decode(b64)
            .map_err(|_| "webhook secret is not valid base64 after whsec_".to_string())?,
    );
    if !KEY_LEN.contains(&key.len()) {
        return Err(format!(
            "webhook secret must decode to 24-64 bytes, not {} bytes",
            key.len()
        ));
    }
    Ok(key)
}

fn mac(secret: &[u8], msg_id: &str, timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `webhook-signature` value for one delivery: `v1,<base64>`.
pub fn sign(secret: &[u8], msg_id: &str, timestamp: u64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(mac(secret, msg_id, timestamp, body).finalize().into_bytes())
    )
}

fn header<'h>(headers: &'h http::HeaderMap, name: &'static str) -> Result<&'h str, CallbackError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(CallbackError::MissingHeader(name))
}

/// Verifies a signed delivery: the timestamp within [`TOLERANCE_SECS`] of `now_secs`, and any
/// one of the space-separated `v1` signatures matching (compared in constant time).
pub fn verify(secret: &[u8], headers: &http::HeaderMap, body: &[u8], now_secs: u64) -> Result<(), CallbackError> {
    let id = header(headers, ID_HEADER)?;
    let timestamp: u64 = header(headers, TIMESTAMP_HEADER)?
        .parse()
        .map_err(|_| CallbackError::MissingHeader(TIMESTAMP_HEADER))?;
    let signatures = header(headers, SIGNATURE_HEADER)?;
    if now_secs.abs_diff(timestamp) > TOLERANCE_SECS {
        return Err(CallbackError::Stale);
    }
    let expected = mac(secret, id, timestamp, body);
    let matched = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| expected.clone().verify_slice(&sig).is_ok());
    if matched {
        Ok(())
    } else {
        Err(CallbackError::BadSignature)
    }
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A fresh delivery id. Alphanumeric, so it can never contain the `.` separator.
fn new_msg_id() -> String {
    let rng = rand::thread_rng();
    let id: String = rng
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("msg_{id}")
}

pub struct Webhook {
    url: String,
    secret: SecretBytes,
    http: reqwest::Client,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may itself carry a credential (a token in the path); it is not shown.
        f.debug_struct("Webhook")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

fn transport(e: reqwest::Error) -> ChannelError {
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    ChannelError::Transport { channel: NAME, detail }
}

/// Data the receiver posts back for a click.
#[derive(Deserialize)]
struct Callback {
    token: String,
    user: String,
}

impl Webhook {
    pub fn new(cfg: WebhookConfig) -> Webhook {
        let http = crate::client::api_client(Some(Duration::from_secs(30)));
        Webhook {
            url: cfg.url,
            secret: cfg.secret,
            http,
        }
    }

    /// Signs and POSTs one event; a 2xx answer means delivered.
    async fn deliver(&self, event: &Value) -> Result<(), ChannelError> {
        let body = serde_json::to_vec(event).map_err(|e| ChannelError::Platform {
            channel: NAME,
            detail: format!("cannot serialize the event: {e}"),
        })?;
        let id = new_msg_id();
        let timestamp = now().as_secs();
        let resp = self
            .http
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign(self.secret.expose(), &id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after_secs = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .unwrap_or(60);
            return Err(ChannelError::RateLimited {
                channel: NAME,
                retry_after_secs,
            });
        }
        Err(ChannelError::Platform {
            channel: NAME,
            detail: format!("the receiver answered HTTP {status}"),
        })
    }
}

/// "approval id/recipient": updates go to whoever got the card. Approval ids are URL-safe
/// (no '/'), so the first '/' separates them.
fn parse_ref(msg: &MessageRef) -> Result<(&str, &str), ChannelError> {
    msg.0
        .split_once('/')
        .filter(|(id, _)| !id.is_empty())
        .ok_or(ChannelError::Platform {
            channel: NAME,
            detail: "malformed message reference".into(),
        })
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(
        &'a self,
        card: &'a Card,
        buttons: &'a Buttons,
        to: &'a str,
    ) -> BoxFuture<'a, Result<MessageRef, ChannelError>> {
        Box::pin(async move {
            let event = json!({
                "type": "approval.requested",
                "timestamp": crate::render::rfc3339(now().as_millis() as u64),
                "data": {
                    "to": to,
                    "card": card,
                    "buttons": {
                        "approve": buttons.approve,
                        "deny": buttons.deny,
                        "grant": buttons.grant,
                    },
                },
            });
            self.deliver(&event).await?;
            Ok(MessageRef(format!("{}/{to}", card.id)))
        })
    }

    fn update<'a>(
        &'a self,
        _card: &'a Card,
        status: &'a Status,
        _buttons: Option<&'a Buttons>,
        msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let (id, to) = parse_ref(msg)?;
            let event = json!({
                "type": "approval.updated",
                "timestamp": crate::render::rfc3339(now().as_millis() as u64),
                "data": { "id": id, "to": to, "status": status },
            });
            self.deliver(&event).await
        })
    }

    /// The answer travels back in the callback's own HTTP response.
    fn acknowledge<'a>(&'a self, _click: &'a Click, _reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async { Ok(()) })
    }

    fn callback(&self, headers: &http::HeaderMap, body: &[u8], now_secs: u64) -> Result<Option<Click>, CallbackError> {
        verify(self.secret.expose(), headers, body, now_secs)?;
        let cb: Callback = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        for (what, v) in [("token", &cb.token), ("user", &cb.user)] {
            if v.is_empty() || v.len() > MAX_FIELD {
                return Err(CallbackError::Malformed(format!("{what} must be 1-{MAX_FIELD} bytes")));
            }
        }
        Ok(Some(Click {
            done: Default::default(),
            channel: NAME,
            user: cb.user,
            token: cb.token,
            ack: json!({}),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_without_echoing() {
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(key.len(), 24);
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!notbase64!!",
            "whsec_c2hvcnQ=",
        ] {
            let e = parse_secret(bad).unwrap_err();
            assert!(!e.contains(bad.trim_start_matches("whsec_")), "{e}");
        }
    }

    #[test]
    fn ids_and_refs() {
        let (a, b) = (new_msg_id(), new_msg_id());
        assert_ne!(a, b);
        assert!(a.starts_with("msg_") && !a.contains('.'));
        let r = MessageRef("AbC/user/with/slash".into());
        assert_eq!(parse_ref(&r).unwrap(), ("AbC", "user/with/slash"));
        assert!(parse_ref(&MessageRef("nope".into())).is_err());
    }
}
