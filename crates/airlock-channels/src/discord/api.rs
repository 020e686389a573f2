//! Discord REST calls: `Authorization: Bot …`, JSON bodies, and the rate limits ("Rate
//! Limits" in the API docs): a bucket that reported `X-RateLimit-Remaining: 0` is waited out
//! until its `X-RateLimit-Reset-After`, and a 429 is retried after its `retry_after` when that
//! is short, reported as [`ChannelError::RateLimited`] when it is not.
//!
//! The bot token only ever goes into a sensitive `Authorization` header; interaction tokens
//! (capabilities in a URL path) never reach a log line or an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use airlock_vault::SecretBytes;
use http::{HeaderValue, Method, StatusCode};
use serde_json::Value;

use crate::ChannelError;

const CHANNEL: &str = "discord";
const MAX_RESPONSE: usize = 1 << 20;
/// Longest wait we sit out ourselves (a 429's `retry_after`, an exhausted bucket); anything
/// longer is handed back to the caller as a rate limit.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(5);
const MAX_ATTEMPTS: u32 = 3;

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

/// How a call authenticates: the bot token, or nothing (interaction callbacks and webhooks
/// are authorized by the interaction token in their path).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    Bot,
    None,
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    bot: SecretBytes,
    /// Route ("METHOD /path") → when its exhausted bucket refills.
    exhausted: Mutex<HashMap<String, Instant>>,
}

fn request_error(what: &str, e: reqwest::Error) -> ChannelError {
    // `without_url`: interaction tokens are in the path.
    transport(format!("{what}: {}", e.without_url()))
}

fn secs_header(h: &http::HeaderMap, name: &str) -> Option<Duration> {
    let v: f64 = h.get(name)?.to_str().ok()?.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(86_400.0)))
}

impl Api {
    pub(crate) fn new(base: &str, bot: SecretBytes) -> Api {
        let http = crate::client::api_client(Some(Duration::from_secs(30)));
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            bot,
            exhausted: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn bot_token(&self) -> &SecretBytes {
        &self.bot
    }

    fn authorization(&self) -> Result<HeaderValue, ChannelError> {
        let mut raw = b"Bot ".to_vec();
        raw.extend_from_slice(self.bot.expose());
        let mut v = HeaderValue::from_bytes(&raw)
            .map_err(|_| transport("the configured Discord token is not a valid header value"))?;
        v.set_sensitive(true);
        Ok(v)
    }

    fn wait_for_bucket(&self, route: &str) -> Result<Option<Duration>, ChannelError> {
        let mut map = self.exhausted.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, until| *until > now);
        match map.get(route) {
            None => Ok(None),
            Some(until) => {
                let wait = *until - now;
                if wait > MAX_INLINE_WAIT {
                    return Err(ChannelError::RateLimited {
                        channel: CHANNEL,
                        retry_after_secs: wait.as_secs().max(1),
                    });
                }
                Ok(Some(wait))
            }
        }
    }

    fn note_bucket(&self, route: &str, h: &http::HeaderMap) {
        let remaining = h
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if remaining == Some(0)
            && let Some(after) = secs_header(h, "x-ratelimit-reset-after")
        {
            let mut map = self.exhausted.lock().unwrap_or_else(|p| p.into_inner());
            map.insert(route.to_string(), Instant::now() + after);
        }
    }

    /// `what` names the call in errors (no ids, no tokens); `path` starts with '/'.
    pub(crate) async fn call(
        &self,
        method: Method,
        what: &str,
        path: &str,
        auth: Auth,
        body: Option<&Value>,
    ) -> Result<Value, ChannelError> {
        let route = format!("{method} {path}");
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| transport(format!("{what}: {e}")))?),
            None => None,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(wait) = self.wait_for_bucket(&route)? {
                tokio::time::sleep(wait).await;
            }
            let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
            if auth == Auth::Bot {
                req = req.header(http::header::AUTHORIZATION, self.authorization()?);
            }
            if let Some(b) = &body {
                req = req
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            let resp = req.send().await.map_err(|e| request_error(what, e))?;
            let status = resp.status();
            self.note_bucket(&route, resp.headers());
            let header_retry = secs_header(resp.headers(), "retry-after");
            let bytes = read_limited(what, resp).await?;
            let v: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry = v["retry_after"]
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
                    .or(header_retry)
                    .unwrap_or(Duration::from_secs(1));
                if retry <= MAX_INLINE_WAIT && attempt < MAX_ATTEMPTS {
                    tracing::debug!(
                        call = what,
                        retry_ms = retry.as_millis() as u64,
                        "discord: rate limited; retrying"
                    );
                    tokio::time::sleep(retry).await;
                    continue;
                }
                return Err(ChannelError::RateLimited {
                    channel: CHANNEL,
                    retry_after_secs: retry.as_secs().max(1),
                });
            }
            if !status.is_success() {
                // Discord's JSON errors carry a numeric code and a message; show both, cut.
                let code = v["code"].as_u64().unwrap_or(0);
                let message: String = v["message"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .take(120)
                    .collect();
                return Err(platform(format!(
                    "{what}: HTTP {} code {code} {message}",
                    status.as_u16()
                )));
            }
            return Ok(v);
        }
    }
}

async fn read_limited(what: &str, mut resp: reqwest::Response) -> Result<Vec<u8>, ChannelError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| request_error(what, e))? {
        if out.len() + chunk.len() > MAX_RESPONSE {
            return Err(transport(format!("{what}: response too large")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
