//! The OAuth2 calls (RFC 6749 with PKCE): the authorization URL `airlock connect` prints, the
//! code exchange, and the refresh the gateway makes before an access token expires. Tokens are
//! read into [`SecretBytes`]; errors carry the server's `error` code and HTTP status only, never
//! a token or the server's free-text description (which could quote one).

use std::time::Duration;

use airlock_config::{ClientAuth, OAuth2};
use airlock_vault::SecretBytes;
use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

/// What a token endpoint granted.
#[derive(Debug)]
pub struct Grant {
    pub access: SecretBytes,
    /// A new refresh token (servers that rotate them send one with every refresh).
    pub refresh: Option<SecretBytes>,
    /// Seconds the access token is valid; `None`: until revoked.
    pub expires_in: Option<u64>,
}

/// Why no token was granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The grant (refresh token or code) was refused: revoked, expired, or used already. Only the
    /// operator's consent can fix it.
    #[error("the authorization server refused the grant ({0})")]
    Refused(String),
    /// Anything else: unreachable, a server error, misconfiguration, a malformed answer.
    #[error("{0}")]
    Failed(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
}

/// The HTTP client for authorization servers: no redirects (a token request is never re-sent
/// elsewhere), bounded time.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent("airlock")
        .build()
        .unwrap_or_default()
}

/// The URL the operator opens to consent.
pub fn authorize_url(cfg: &OAuth2, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let mut url = match url::Url::parse(&cfg.auth_url) {
        Ok(u) => u,
        Err(_) => return cfg.auth_url.clone(), // validated at load
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &cfg.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if !cfg.scopes.is_empty() {
            q.append_pair("scope", &cfg.scopes.join(" "));
        }
        for (k, v) in &cfg.auth_params {
            q.append_pair(k, v);
        }
    }
    url.into()
}

/// Exchanges an authorization `code` (with its PKCE `verifier`).
pub async fn exchange_code(
    http: &reqwest::Client,
    cfg: &OAuth2,
    client_secret: Option<&SecretBytes>,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<Grant, GrantError> {
    let form = vec![
        ("grant_type", Zeroizing::new("authorization_code".to_string())),
        ("code", Zeroizing::new(code.to_string())),
        ("code_verifier", Zeroizing::new(verifier.to_string())),
        ("redirect_uri", Zeroizing::new(redirect_uri.to_string())),
    ];
    token_request(http, cfg, client_secret, form).await
}

/// Trades the refresh token for a new access token (and perhaps a new refresh token).
pub async fn refresh(
    http: &reqwest::Client,
    cfg: &OAuth2,
    client_secret: Option<&SecretBytes>,
    refresh_token: &SecretBytes,
) -> Result<Grant, GrantError> {
    let rt = std::str::from_utf8(refresh_token.expose())
        .map_err(|_| GrantError::Refused("the sealed refresh token is not text".into()))?;
    let form = vec![
        ("grant_type", Zeroizing::new("refresh_token".to_string())),
        ("refresh_token", Zeroizing::new(rt.to_string())),
    ];
    token_request(http, cfg, client_secret, form).await
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 §2.3.1, Appendix B).
fn percent(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn token_request(
    http: &reqwest::Client,
    cfg: &OAuth2,
    client_secret: Option<&SecretBytes>,
    mut form: Vec<(&'static str, Zeroizing<String>)>,
) -> Result<Grant, GrantError> {
    let secret = client_secret
        .map(|s| std::str::from_utf8(s.expose()).map(|s| Zeroizing::new(s.to_string())))
        .transpose()
        .map_err(|_| GrantError::Failed("the client secret is not text".into()))?;
    let mut req = http
        .post(&cfg.token_url)
        .header(reqwest::header::ACCEPT, "application/json");
    match (cfg.client_auth, &secret) {
        (ClientAuth::Basic, Some(s)) => {
            // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined.
            let pair = Zeroizing::new(format!("{}:{}", percent(&cfg.client_id), percent(s)));
            let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
            req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {}", &*b64));
        }
        (_, s) => {
            form.push(("client_id", Zeroizing::new(cfg.client_id.clone())));
            if let Some(s) = s {
                form.push(("client_secret", s.clone()));
            }
        }
    }
    let body: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = req
        .form(&body)
        .send()
        .await
        .map_err(|e| GrantError::Failed(format!("token endpoint unreachable: {}", without_url(&e))))?;
    let status = resp.status();
    let bytes = Zeroizing::new(
        resp.bytes()
            .await
            .map_err(|_| GrantError::Failed(format!("token endpoint answer unreadable (HTTP {status})")))?
            .to_vec(),
    );
    let parsed: Option<TokenResponse> = serde_json::from_slice(&bytes).ok();
    let code = parsed.as_ref().and_then(|p| p.error.as_deref()).map(error_code);
    match (status.as_u16(), parsed, code) {
        (_, _, Some(code)) if refused(&code) => Err(GrantError::Refused(code)),
        (_, _, Some(code)) => Err(GrantError::Failed(format!(
            "token endpoint error {code} (HTTP {status})"
        ))),
        (
            200..=299,
            Some(TokenResponse {
                access_token: Some(access),
                refresh_token,
                expires_in,
                ..
            }),
            None,
        ) => Ok(Grant {
            access: SecretBytes::new(access.into_bytes()),
            refresh: refresh_token.map(|r| SecretBytes::new(r.into_bytes())),
            expires_in: expires_in.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())),
        }),
        _ => Err(GrantError::Failed(format!(
            "token endpoint answered HTTP {status} without a token"
        ))),
    }
}

/// OAuth2 error codes meaning the grant itself is dead (GitHub's own name included).
fn refused(code: &str) -> bool {
    matches!(
        code,
        "invalid_grant" | "bad_refresh_token" | "bad_verification_code" | "unauthorized_client"
    )
}

/// The server's error code, kept to the characters RFC 6749 allows in one (and short).
pub(crate) fn error_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

/// A reqwest error's description without its URL (a misconfigured URL could carry a secret).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OAuth2 {
        OAuth2 {
            provider: "generic".into(),
            auth_url: "https://auth.example/authorize?tenant=x".into(),
            token_url: "https://auth.example/token".into(),
            scopes: vec!["mail.read".into(), "offline_access".into()],
            client_id: "client one".into(),
            client_secret: None,
            client_auth: ClientAuth::Post,
            auth_params: vec![("prompt".into(), "consent".into())],
            redirect_uri: None,
        }
    }

    #[test]
    fn the_authorization_url_asks_for_a_code_with_an_s256_challenge() {
        let u = url::Url::parse(&authorize_url(&cfg(), "http://127.0.0.1:1/oauth/callback", "st", "ch")).expect("url");
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "x");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "client one");
        assert_eq!(q["code_challenge"], "ch");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], "st");
        assert_eq!(q["scope"], "mail.read offline_access");
        assert_eq!(q["prompt"], "consent");
    }

    #[test]
    fn error_codes_are_kept_to_safe_characters() {
        assert_eq!(error_code("invalid_grant"), "invalid_grant");
        assert_eq!(error_code("bad token=abc def\n"), "badtokenabcdef");
    }
}
