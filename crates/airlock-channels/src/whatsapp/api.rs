//! WhatsApp Cloud API calls (Graph API): `POST /{phone_number_id}/messages` with the access
//! token as `Authorization: Bearer` (marked sensitive). Errors carry the Graph error code and
//! the HTTP status, never the token or a message body.

use std::time::Duration;

use airlock_vault::SecretBytes;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use super::NAME;
use super::verify::is_message_id;
use crate::ChannelError;

const MAX_RESPONSE: usize = 64 * 1024;

/// "Re-engagement message": more than 24 hours since the recipient last wrote to the number.
pub const OUTSIDE_WINDOW: i64 = 131_047;

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: NAME,
        detail: detail.into(),
    }
}

fn transport(e: reqwest::Error) -> ChannelError {
    ChannelError::Transport {
        channel: NAME,
        detail: e.without_url().to_string(),
    }
}

/// A refused send: the Graph error code, when there was one.
pub(crate) struct Refused {
    pub(crate) code: Option<i64>,
    pub(crate) error: ChannelError,
}

pub(crate) struct Api {
    http: reqwest::Client,
    /// `{api_base}/{phone_number_id}/messages`.
    messages_url: String,
    token: SecretBytes,
}

impl Api {
    pub(crate) fn new(api_base: &str, phone_number_id: &str, token: SecretBytes) -> Api {
        Api {
            http: crate::client::api_client(Some(Duration::from_secs(30))),
            messages_url: format!("{}/{phone_number_id}/messages", api_base.trim_end_matches('/')),
            token,
        }
    }

    /// Sends one message; returns its id (`wamid…`).
    pub(crate) async fn send(&self, msg: &Value) -> Result<String, Refused> {
        let plain = |error| Refused { code: None, error };
        let mut raw = b"Bearer ".to_vec();
        raw.extend_from_slice(self.token.expose());
        let mut auth = HeaderValue::from_bytes(&raw)
            .map_err(|_| plain(platform("the access token is not a valid header value")))?;
        auth.set_sensitive(true);
        let body = serde_json::to_vec(msg).map_err(|e| plain(platform(e.to_string())))?;
        let mut resp = self
            .http
            .post(&self.messages_url)
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| plain(transport(e)))?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| plain(transport(e)))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(plain(platform("the answer is too large")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(plain(ChannelError::RateLimited {
                channel: NAME,
                retry_after_secs: 60,
            }));
        }
        if !status.is_success() {
            let code = v["error"]["code"].as_i64();
            return Err(Refused {
                code,
                error: platform(format!(
                    "messages: HTTP {}: error code {}",
                    status.as_u16(),
                    code.map_or("none".to_string(), |c| c.to_string())
                )),
            });
        }
        v["messages"][0]["id"]
            .as_str()
            .filter(|id| is_message_id(id))
            .map(str::to_string)
            .ok_or_else(|| plain(platform("messages: no message id in the answer")))
    }
}
