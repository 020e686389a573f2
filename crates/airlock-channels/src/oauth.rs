//! REST calls with an OAuth 2.0 access token the channel obtains itself and caches until 5
//! minutes before it expires: by client credentials (Microsoft Entra, for the Bot Framework)
//! or by a JWT bearer grant signed with a service account's key (Google). Errors carry the
//! call's name and HTTP status, never a token or a body.

use std::time::{Duration, Instant};

use airlock_vault::SecretBytes;
use http::{HeaderValue, Method, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::ChannelError;
use crate::jwt::SigningKey;

const MAX_RESPONSE: usize = 1 << 20;
/// A token is renewed this long before it expires.
const EARLY: Duration = Duration::from_secs(300);

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// How the access token is obtained.
pub(crate) enum Grant {
    /// `client_credentials` with a client id and secret.
    ClientCredentials {
        client_id: String,
        secret: SecretBytes,
        scope: String,
    },
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`: an RS256 assertion signed with the
    /// service account's key (RFC 7523).
    JwtBearer {
        email: String,
        key_id: Option<String>,
        key: Box<SigningKey>,
        scope: String,
    },
}

pub(crate) struct Api {
    channel: &'static str,
    http: reqwest::Client,
    token_url: String,
    grant: Grant,
    token: Mutex<Option<(SecretBytes, Instant)>>,
}

async fn read(
    channel: &'static str,
    mut resp: reqwest::Response,
    what: &str,
) -> Result<(StatusCode, Vec<u8>), ChannelError> {
    let transport = |detail: String| ChannelError::Transport { channel, detail };
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after_secs = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(60);
        return Err(ChannelError::RateLimited {
            channel,
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
        return Err(ChannelError::Platform {
            channel,
            detail: format!("{what}: HTTP {}", status.as_u16()),
        });
    }
    Ok((status, out))
}

impl Api {
    pub(crate) fn new(channel: &'static str, token_url: &str, grant: Grant) -> Api {
        Api {
            channel,
            http: crate::client::api_client(Some(Duration::from_secs(30))),
            token_url: token_url.to_string(),
            grant,
            token: Mutex::new(None),
        }
    }

    fn transport(&self, detail: String) -> ChannelError {
        ChannelError::Transport {
            channel: self.channel,
            detail,
        }
    }

    /// The token request's form (it holds a secret or a signed assertion).
    fn form(&self) -> Result<SecretBytes, ChannelError> {
        let form = match &self.grant {
            Grant::ClientCredentials {
                client_id,
                secret,
                scope,
            } => {
                let secret = std::str::from_utf8(secret.expose())
                    .map_err(|_| self.transport("the client secret is not UTF-8".into()))?;
                format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                    enc(client_id),
                    enc(secret),
                    enc(scope)
                )
            }
            Grant::JwtBearer {
                email,
                key_id,
                key,
                scope,
            } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let claims = serde_json::json!({"iss": email, "scope": scope, "aud": self.token_url,
                                                "iat": now, "exp": now + 3600});
                let assertion = key
                    .sign(key_id.as_deref(), &claims)
                    .map_err(|e| self.transport(format!("token assertion: {e}")))?;
                format!(
                    "grant_type={}&assertion={assertion}",
                    enc("urn:ietf:params:oauth:grant-type:jwt-bearer")
                )
            }
        };
        Ok(SecretBytes::new(form.into_bytes()))
    }

    /// The cached access token, renewed when it has less than 5 minutes left.
    async fn token(&self) -> Result<SecretBytes, ChannelError> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let form = self.form()?;
        let what = "access token";
        let resp = self
            .http
            .post(&self.token_url)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.expose().to_vec())
            .send()
            .await
            .map_err(|e| self.transport(format!("{what}: {}", e.without_url())))?;
        let (_, body) = read(self.channel, resp, what).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| self.transport(format!("{what}: not JSON")))?;
        let (Some(t), Some(secs)) = (v["access_token"].as_str(), v["expires_in"].as_u64()) else {
            return Err(ChannelError::Platform {
                channel: self.channel,
                detail: format!("{what}: no access_token / expires_in"),
            });
        };
        let token = SecretBytes::new(t.as_bytes().to_vec());
        let life = Duration::from_secs(secs);
        let until = Instant::now() + life.checked_sub(EARLY).unwrap_or(life / 2);
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    /// A call to `url` with the access token, `body` as JSON.
    pub(crate) async fn call(
        &self,
        method: Method,
        what: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, ChannelError> {
        let transport = |detail: String| self.transport(detail);
        let token = self.token().await?;
        let mut raw = b"Bearer ".to_vec();
        raw.extend_from_slice(token.expose());
        let mut auth = HeaderValue::from_bytes(&raw)
            .map_err(|_| transport("the access token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut req = self.http.request(method, url).header(http::header::AUTHORIZATION, auth);
        if let Some(b) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).map_err(|e| transport(format!("{what}: {e}")))?);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport(format!("{what}: {}", e.without_url())))?;
        let (_, out) = read(self.channel, resp, what).await?;
        if out.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out).map_err(|_| transport(format!("{what}: the answer is not JSON")))
    }
}
