//! Bot Framework Connector calls with an Entra access token obtained by client credentials
//! (scope `https://api.botframework.com/.default`) and cached until 5 minutes before it
//! expires. Errors carry the call's name and HTTP status, never a token or a body.

use std::time::{Duration, Instant};

use airlock_vault::SecretBytes;
use http::{HeaderValue, Method, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::ChannelError;

const CHANNEL: &str = "teams";
const MAX_RESPONSE: usize = 1 << 20;
pub const SCOPE: &str = "https://api.botframework.com/.default";
/// A token is renewed this long before it expires.
const EARLY: Duration = Duration::from_secs(300);

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

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

pub(crate) struct Api {
    http: reqwest::Client,
    token_url: String,
    app_id: String,
    app_password: SecretBytes,
    token: Mutex<Option<(SecretBytes, Instant)>>,
}

async fn read(mut resp: reqwest::Response, what: &str) -> Result<(StatusCode, Vec<u8>), ChannelError> {
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
    Ok((status, out))
}

impl Api {
    pub(crate) fn new(token_url: &str, app_id: &str, app_password: SecretBytes) -> Api {
        Api {
            http: crate::client::api_client(Some(Duration::from_secs(30))),
            token_url: token_url.to_string(),
            app_id: app_id.to_string(),
            app_password,
            token: Mutex::new(None),
        }
    }

    /// The cached access token, renewed when it has less than 5 minutes left.
    async fn token(&self) -> Result<SecretBytes, ChannelError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let password =
            std::str::from_utf8(self.app_password.expose()).map_err(|_| transport("the app password is not UTF-8"))?;
        let form = SecretBytes::new(
            format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                enc(&self.app_id),
                enc(password),
                enc(SCOPE)
            )
            .into_bytes(),
        );
        let what = "Entra token";
        let resp = self
            .http
            .post(&self.token_url)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.expose().to_vec())
            .send()
            .await
            .map_err(|e| transport(format!("{what}: {}", e.without_url())))?;
        let (_, body) = read(resp, what).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| transport(format!("{what}: not JSON")))?;
        let (Some(t), Some(secs)) = (v["access_token"].as_str(), v["expires_in"].as_u64()) else {
            return Err(platform(format!("{what}: no access_token / expires_in")));
        };
        let token = SecretBytes::new(t.as_bytes().to_vec());
        let life = Duration::from_secs(secs);
        let until = Instant::now() + life.checked_sub(EARLY).unwrap_or(life / 2);
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    /// A Connector call to `url` (under a conversation's serviceUrl).
    pub(crate) async fn call(
        &self,
        method: Method,
        what: &str,
        url: &str,
        body: &Value,
    ) -> Result<Value, ChannelError> {
        let token = self.token().await?;
        let mut raw = b"Bearer ".to_vec();
        raw.extend_from_slice(token.expose());
        let mut auth =
            HeaderValue::from_bytes(&raw).map_err(|_| transport("the access token is not a valid header value"))?;
        auth.set_sensitive(true);
        let resp = self
            .http
            .request(method, url)
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).map_err(|e| transport(format!("{what}: {e}")))?)
            .send()
            .await
            .map_err(|e| transport(format!("{what}: {}", e.without_url())))?;
        let (_, out) = read(resp, what).await?;
        if out.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out).map_err(|_| transport(format!("{what}: the answer is not JSON")))
    }
}
