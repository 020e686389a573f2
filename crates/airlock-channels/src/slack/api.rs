//! Slack Web API calls: bearer auth, JSON bodies, Slack's `ok`/`error` envelope, 429s.
//!
//! Tokens only ever go into an `Authorization` header marked sensitive; errors carry the
//! method name and Slack's error code, never a token, a URL with a ticket, or a body.

use std::time::Duration;

use airlock_vault::SecretBytes;
use http::{HeaderValue, StatusCode};
use reqwest::Url;
use serde_json::Value;

use crate::ChannelError;

const CHANNEL: &str = "slack";
/// Slack's answers are small; anything larger is not Slack.
const MAX_RESPONSE: usize = 1 << 20;
/// Used when a 429 comes without a usable Retry-After.
const DEFAULT_RETRY_AFTER: u64 = 30;

pub(crate) struct Api {
    http: reqwest::Client,
    /// Without a trailing slash.
    base: String,
    bot: SecretBytes,
}

fn transport(detail: impl Into<String>) -> ChannelError {
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

/// Slack's error codes are short snake_case words; anything else is shown cut and neutered.
fn error_code(v: &Value) -> String {
    let raw = v.get("error").and_then(Value::as_str).unwrap_or("unknown_error");
    raw.chars().filter(|c| c.is_ascii_graphic()).take(100).collect()
}

fn bearer(token: &SecretBytes) -> Result<HeaderValue, ChannelError> {
    let mut raw = Vec::with_capacity(7 + token.len());
    raw.extend_from_slice(b"Bearer ");
    raw.extend_from_slice(token.expose());
    let mut v = HeaderValue::from_bytes(&raw)
        .map_err(|_| transport("the configured Slack token is not a valid header value"))?;
    // Keeps it out of hpack tables and of reqwest's Debug output.
    v.set_sensitive(true);
    Ok(v)
}

fn request_error(what: &str, e: reqwest::Error) -> ChannelError {
    // `without_url`: response URLs and socket tickets are capabilities.
    transport(format!("{what}: {}", e.without_url()))
}

impl Api {
    pub(crate) fn new(base: &str, bot: SecretBytes) -> Api {
        let http = crate::client::api_client(Some(Duration::from_secs(30)));
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            bot,
        }
    }

    /// A Web API method with the bot token and a JSON body.
    pub(crate) async fn call(&self, method: &str, body: &Value) -> Result<Value, ChannelError> {
        self.call_with(method, &self.bot, Some(body)).await
    }

    /// A Web API method with `token`; `body: None` posts an empty form (apps.connections.open).
    pub(crate) async fn call_with(
        &self,
        method: &str,
        token: &SecretBytes,
        body: Option<&Value>,
    ) -> Result<Value, ChannelError> {
        let url = format!("{}/{method}", self.base);
        let req = self.http.post(url).header(http::header::AUTHORIZATION, bearer(token)?);
        let req = match body {
            Some(b) => req
                .header(http::header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(serde_json::to_vec(b).map_err(|e| transport(format!("{method}: {e}")))?),
            None => req.header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        };
        let resp = req.send().await.map_err(|e| request_error(method, e))?;
        let v = read_json(method, resp).await?;
        if v.get("ok").and_then(Value::as_bool) != Some(true) {
            return Err(platform(format!("{method}: {}", error_code(&v))));
        }
        Ok(v)
    }

    /// Posts to an interaction's `response_url` (no token: the URL is the capability).
    pub(crate) async fn post_response_url(&self, url: &str, body: &Value) -> Result<(), ChannelError> {
        let what = "response_url";
        let resp = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(serde_json::to_vec(body).map_err(|e| transport(format!("{what}: {e}")))?)
            .send()
            .await
            .map_err(|e| request_error(what, e))?;
        // Answers `{"ok":true}` (or a bare "ok" from older endpoints).
        let status = resp.status();
        check_rate_limit(&resp)?;
        let bytes = read_limited(what, resp).await?;
        if !status.is_success() {
            return Err(platform(format!("{what}: HTTP {}", status.as_u16())));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.get("ok").and_then(Value::as_bool) == Some(false) => {
                Err(platform(format!("{what}: {}", error_code(&v))))
            }
            _ => Ok(()),
        }
    }

    /// Response URLs come from authenticated payloads, but we still only post to Slack's
    /// hooks host or to the configured API's own origin (a proxy or a test double): never to
    /// an arbitrary address named in a payload.
    pub(crate) fn trusted_response_url(&self, url: &str) -> bool {
        let Ok(u) = Url::parse(url) else { return false };
        let slack_hooks = u.scheme() == "https"
            && matches!(u.host_str(), Some("hooks.slack.com" | "hooks.slack-gov.com"))
            && u.port().is_none();
        let same_origin = Url::parse(&self.base).is_ok_and(|b| {
            b.scheme() == u.scheme()
                && b.host_str() == u.host_str()
                && b.port_or_known_default() == u.port_or_known_default()
        });
        slack_hooks || same_origin
    }

    /// Socket URLs must be `wss://`; plain `ws://` only when the API itself is plain HTTP
    /// (a local test double), so a TLS-configured gateway never downgrades.
    pub(crate) fn allows_socket_url(&self, url: &str) -> bool {
        match Url::parse(url) {
            Ok(u) if u.scheme() == "wss" => true,
            Ok(u) if u.scheme() == "ws" => self.base.starts_with("http://"),
            _ => false,
        }
    }
}

fn check_rate_limit(resp: &reqwest::Response) -> Result<(), ChannelError> {
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        let retry_after_secs = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_RETRY_AFTER);
        return Err(ChannelError::RateLimited {
            channel: CHANNEL,
            retry_after_secs,
        });
    }
    Ok(())
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

async fn read_json(method: &str, resp: reqwest::Response) -> Result<Value, ChannelError> {
    check_rate_limit(&resp)?;
    let status = resp.status();
    let bytes = read_limited(method, resp).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        // Slack reports most failures as HTTP 200 with ok:false; some come with a 4xx/5xx
        // and the same envelope.
        Ok(v) if v.is_object() => Ok(v),
        _ if !status.is_success() => Err(platform(format!("{method}: HTTP {}", status.as_u16()))),
        _ => Err(transport(format!("{method}: the answer is not a JSON object"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> Api {
        Api::new(base, SecretBytes::new(b"xoxb-test".to_vec()))
    }

    #[test]
    fn response_urls_only_go_to_slack_or_the_configured_origin() {
        let real = api("https://slack.com/api/");
        assert!(real.trusted_response_url("https://hooks.slack.com/actions/T1/2/abc"));
        for bad in [
            "http://hooks.slack.com/actions/T1/2/abc",
            "https://hooks.slack.com:8443/actions",
            "https://hooks.slack.com.evil.example/actions",
            "https://evil.example/hooks.slack.com",
            "http://127.0.0.1:8080/hook",
            "not a url",
        ] {
            assert!(!real.trusted_response_url(bad), "{bad}");
        }
        let local = api("http://127.0.0.1:8080/api");
        assert!(local.trusted_response_url("http://127.0.0.1:8080/hooks/x"));
        assert!(!local.trusted_response_url("http://127.0.0.1:8081/hooks/x"));
    }

    #[test]
    fn socket_urls_never_downgrade_from_tls() {
        let real = api("https://slack.com/api");
        assert!(real.allows_socket_url("wss://wss-primary.slack.com/link/?ticket=x"));
        assert!(!real.allows_socket_url("ws://wss-primary.slack.com/link/?ticket=x"));
        assert!(!real.allows_socket_url("https://slack.com/link"));
        assert!(api("http://127.0.0.1:1/api").allows_socket_url("ws://127.0.0.1:2/link/"));
    }
}
