//! Publishing to an ntfy server as JSON (`POST` to the server's root URL), with the access
//! token as a bearer credential in a header marked sensitive. Errors carry ntfy's error text,
//! cut, never the token.

use std::time::Duration;

use airlock_vault::SecretBytes;
use http::HeaderValue;
use serde_json::Value;

use super::NAME;
use crate::ChannelError;

/// ntfy's answers are one message object; anything larger is not ntfy.
const MAX_RESPONSE: usize = 64 * 1024;

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

pub(crate) struct Api {
    http: reqwest::Client,
    /// The server's root URL, with a trailing slash (publish-as-JSON goes there).
    root: String,
    token: Option<SecretBytes>,
}

impl Api {
    pub(crate) fn new(server: &str, token: Option<SecretBytes>) -> Api {
        let http = crate::client::api_client(Some(Duration::from_secs(30)));
        Api {
            http,
            root: format!("{}/", server.trim_end_matches('/')),
            token,
        }
    }

    fn bearer(&self) -> Result<Option<HeaderValue>, ChannelError> {
        let Some(t) = &self.token else { return Ok(None) };
        let mut raw = Vec::with_capacity(7 + t.len());
        raw.extend_from_slice(b"Bearer ");
        raw.extend_from_slice(t.expose());
        let mut v =
            HeaderValue::from_bytes(&raw).map_err(|_| platform("the access token is not a valid header value"))?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// Publishes one message; returns the id ntfy gave it.
    pub(crate) async fn publish(&self, msg: &Value) -> Result<String, ChannelError> {
        let body = serde_json::to_vec(msg).map_err(|e| platform(format!("cannot serialize: {e}")))?;
        let mut req = self
            .http
            .post(&self.root)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(b) = self.bearer()? {
            req = req.header(http::header::AUTHORIZATION, b);
        }
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
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
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(platform("the answer is too large to be ntfy's"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            // ntfy answers errors as {"code":40301,"http":403,"error":"forbidden",…}.
            let why: String = v["error"]
                .as_str()
                .unwrap_or("no error text")
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            return Err(platform(format!("HTTP {}: {why}", status.as_u16())));
        }
        v["id"]
            .as_str()
            .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_string)
            .ok_or_else(|| platform("the answer has no message id"))
    }
}
