//! Mattermost REST API v4 with the bot's access token (`Authorization: Bearer`, marked
//! sensitive). Errors carry Mattermost's error id, cut, never the token.

use std::time::Duration;

use airlock_vault::SecretBytes;
use http::HeaderValue;
use serde_json::Value;

use super::NAME;
use crate::ChannelError;

const MAX_RESPONSE: usize = 1 << 20;

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: NAME,
        detail: detail.into(),
    }
}

pub(crate) struct Api {
    http: reqwest::Client,
    /// `{url}/api/v4`.
    base: String,
    token: SecretBytes,
}

impl Api {
    pub(crate) fn new(url: &str, token: SecretBytes) -> Api {
        let http = crate::client::api_client(Some(Duration::from_secs(30)));
        Api {
            http,
            base: format!("{}/api/v4", url.trim_end_matches('/')),
            token,
        }
    }

    /// One call; `body: None` for a GET.
    pub(crate) async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ChannelError> {
        let mut auth = Vec::with_capacity(7 + self.token.len());
        auth.extend_from_slice(b"Bearer ");
        auth.extend_from_slice(self.token.expose());
        let mut auth =
            HeaderValue::from_bytes(&auth).map_err(|_| platform("the bot token is not a valid header value"))?;
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(http::header::AUTHORIZATION, auth);
        if let Some(b) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).map_err(|e| platform(e.to_string()))?);
        }
        let mut resp = req.send().await.map_err(|e| ChannelError::Transport {
            channel: NAME,
            detail: e.without_url().to_string(),
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ChannelError::RateLimited {
                channel: NAME,
                retry_after_secs: resp
                    .headers()
                    .get("x-ratelimit-reset")
                    .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                    .unwrap_or(10),
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ChannelError::Transport {
            channel: NAME,
            detail: e.without_url().to_string(),
        })? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(platform("the answer is too large"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let id: String = v["id"]
                .as_str()
                .unwrap_or("no error id")
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(120)
                .collect();
            return Err(platform(format!("{path}: HTTP {}: {id}", status.as_u16())));
        }
        Ok(v)
    }
}
