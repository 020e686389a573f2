//! Matrix client-server API calls (`/_matrix/client/v3`): the access token as
//! `Authorization: Bearer` (marked sensitive), ids percent-encoded in paths, `M_LIMIT_EXCEEDED`
//! honoured. Errors carry the call's name, HTTP status and `errcode`, never the token.

use std::time::Duration;

use airlock_vault::SecretBytes;
use http::{HeaderValue, Method, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::NAME;
use crate::ChannelError;

/// A sync answer for many rooms may be large; a card's answers are small.
const MAX_RESPONSE: usize = 8 << 20;

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: NAME,
        detail: detail.into(),
    }
}

fn transport(what: &str, e: reqwest::Error) -> ChannelError {
    ChannelError::Transport {
        channel: NAME,
        detail: format!("{what}: {}", e.without_url()),
    }
}

/// A path segment (room id, event id, user id, transaction id).
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A fresh transaction id.
pub(crate) fn txn() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

pub(crate) struct Api {
    http: reqwest::Client,
    /// `{homeserver}/_matrix/client/v3`.
    base: String,
    token: SecretBytes,
}

impl Api {
    pub(crate) fn new(homeserver: &str, token: SecretBytes) -> Api {
        Api {
            // Long polls set their own deadline per call.
            http: crate::client::api_client(None),
            base: format!("{}/_matrix/client/v3", homeserver.trim_end_matches('/')),
            token,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        what: &str,
        path_and_query: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, ChannelError> {
        let mut raw = b"Bearer ".to_vec();
        raw.extend_from_slice(self.token.expose());
        let mut auth =
            HeaderValue::from_bytes(&raw).map_err(|_| platform("the access token is not a valid header value"))?;
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(method, format!("{}{path_and_query}", self.base))
            .header(http::header::AUTHORIZATION, auth)
            .timeout(timeout);
        if let Some(b) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).map_err(|e| platform(format!("{what}: {e}")))?);
        }
        let mut resp = req.send().await.map_err(|e| transport(what, e))?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(what, e))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(platform(format!("{what}: the answer is too large")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status == StatusCode::TOO_MANY_REQUESTS || v["errcode"] == "M_LIMIT_EXCEEDED" {
            return Err(ChannelError::RateLimited {
                channel: NAME,
                retry_after_secs: v["retry_after_ms"].as_u64().map_or(5, |ms| ms.div_ceil(1000)),
            });
        }
        if !status.is_success() {
            let code: String = v["errcode"]
                .as_str()
                .unwrap_or("no errcode")
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            return Err(platform(format!("{what}: HTTP {}: {code}", status.as_u16())));
        }
        Ok(v)
    }
}
