//! Webex REST calls: `Authorization: Bearer <bot token>` (sensitive), JSON bodies, 429s with
//! `Retry-After`. Errors carry the call's name and HTTP status, never a token or a body.

use std::time::Duration;

use airlock_vault::SecretBytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::Value;

use crate::ChannelError;

const CHANNEL: &str = "webex";
const MAX_RESPONSE: usize = 1 << 20;

pub(crate) fn transport(detail: impl Into<String>) -> ChannelError {
    ChannelError::Transport {
        channel: CHANNEL,
        detail: detail.into(),
    }
}

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: CHANNEL,
        detail: detail.into(),
    }
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: SecretBytes,
}

impl Api {
    pub(crate) fn new(base: &str, token: SecretBytes) -> Api {
        let http = crate::client::api_client(Some(Duration::from_secs(30)));
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        what: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ChannelError> {
        let mut raw = b"Bearer ".to_vec();
        raw.extend_from_slice(self.token.expose());
        let mut auth = HeaderValue::from_bytes(&raw)
            .map_err(|_| transport("the configured Webex token is not a valid header value"))?;
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(http::header::AUTHORIZATION, auth);
        if let Some(b) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).map_err(|e| transport(format!("{what}: {e}")))?);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| transport(format!("{what}: {}", e.without_url())))?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after_secs = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(60);
            return Err(ChannelError::RateLimited {
                channel: CHANNEL,
                retry_after_secs,
            });
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport(format!("{what}: {}", e.without_url())))?
        {
            if out.len() + chunk.len() > MAX_RESPONSE {
                return Err(transport(format!("{what}: response too large")));
            }
            out.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(platform(format!("{what}: HTTP {}", status.as_u16())));
        }
        serde_json::from_slice(&out).map_err(|_| transport(format!("{what}: the answer is not JSON")))
    }
}
