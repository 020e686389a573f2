//! signal-cli's HTTP daemon (`signal-cli daemon --http`): JSON-RPC 2.0 on `POST /api/v1/rpc`,
//! incoming messages as server-sent events on `GET /api/v1/events`. The daemon listens on
//! loopback next to airlock and takes no credential; errors carry the JSON-RPC error code.

use std::time::Duration;

use serde_json::{Value, json};

use super::NAME;
use crate::ChannelError;

const MAX_RESPONSE: usize = 256 * 1024;

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: NAME,
        detail: detail.into(),
    }
}

pub(crate) fn transport(e: reqwest::Error) -> ChannelError {
    ChannelError::Transport {
        channel: NAME,
        detail: e.without_url().to_string(),
    }
}

pub(crate) struct Api {
    rpc: reqwest::Client,
    /// No overall deadline: the event stream stays open.
    pub(crate) stream: reqwest::Client,
    pub(crate) base: String,
    /// The daemon's account, for a daemon serving several (`params.account`).
    account: Option<String>,
}

impl Api {
    pub(crate) fn new(base: &str, account: Option<String>) -> Api {
        Api {
            rpc: crate::client::api_client(Some(Duration::from_secs(30))),
            stream: crate::client::api_client(None),
            base: base.trim_end_matches('/').to_string(),
            account,
        }
    }

    pub(crate) fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Sends `text` to `to`; returns the message's timestamp (its id).
    pub(crate) async fn send(&self, to: &str, text: &str) -> Result<u64, ChannelError> {
        let mut params = json!({"recipient": [to], "message": text});
        if let Some(a) = &self.account {
            params["account"] = json!(a);
        }
        let id = hex::encode(rand::random::<[u8; 8]>());
        let req = json!({"jsonrpc": "2.0", "method": "send", "params": params, "id": id});
        let mut resp = self
            .rpc
            .post(format!("{}/api/v1/rpc", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&req).map_err(|e| platform(e.to_string()))?)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(platform("the answer is too large"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(code) = v["error"]["code"].as_i64() {
            return Err(platform(format!("send: JSON-RPC error {code}")));
        }
        if !status.is_success() || v["id"] != id.as_str() {
            return Err(platform(format!(
                "send: HTTP {}, no answer to our request",
                status.as_u16()
            )));
        }
        v["result"]["timestamp"]
            .as_u64()
            .ok_or_else(|| platform("send: no timestamp in the result"))
    }
}
