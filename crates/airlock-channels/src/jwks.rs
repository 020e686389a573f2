//! Signing keys fetched and cached for [`crate::jwt::verify`]: from an OpenID metadata document
//! (`jwks_uri`, the Bot Framework) or a JWKS URL directly (Google). Keys are kept for a day; a
//! token naming a `kid` the cache lacks triggers one refetch (rotated keys are picked up), at
//! most once per `refetch_after`, so a stream of forged kids cannot make us hammer the issuer.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::jwt::{self, Jwk, JwtError};
use crate::{CallbackError, Click};

/// For a callback authenticated by a bearer token whose keys may have to be fetched (Teams,
/// Google Chat): [`crate::Channel::callback`] only checks the shape and hands the token and
/// body to [`crate::Channel::resolve`] in a placeholder click, which [`unstash`] reads back.
pub(crate) fn stash(channel: &'static str, bearer: &str, body: &[u8]) -> Result<Click, CallbackError> {
    let body = std::str::from_utf8(body).map_err(|_| CallbackError::Malformed("the body is not UTF-8".into()))?;
    if !serde_json::from_str::<Value>(body).is_ok_and(|v| v.is_object()) {
        return Err(CallbackError::Malformed("the body is not a JSON object".into()));
    }
    Ok(Click {
        channel,
        user: String::new(),
        token: String::new(),
        ack: serde_json::json!({"authorization": format!("Bearer {bearer}"), "body": body}),
        done: Default::default(),
    })
}

/// The headers (Authorization only) and body [`stash`] kept.
pub(crate) fn unstash(click: &Click) -> Result<(http::HeaderMap, String), CallbackError> {
    let (Some(auth), Some(body)) = (click.ack["authorization"].as_str(), click.ack["body"].as_str()) else {
        return Err(CallbackError::Malformed("no callback body".into()));
    };
    let mut headers = http::HeaderMap::new();
    let value = http::HeaderValue::from_str(auth).map_err(|_| CallbackError::MissingHeader("authorization"))?;
    headers.insert(http::header::AUTHORIZATION, value);
    Ok((headers, body.to_string()))
}

const MAX_DOC: usize = 1 << 20;
/// How long fetched keys are trusted before they are fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Default minimum time between two fetches caused by unknown kids.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An OpenID configuration document whose `jwks_uri` names the keys.
    OpenId(String),
    /// A JWKS document.
    Jwks(String),
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{0}")]
    Token(#[from] JwtError),
    /// The keys could not be fetched: the request may be genuine.
    #[error("signing keys unavailable: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct State {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
}

pub struct KeyCache {
    http: reqwest::Client,
    source: KeySource,
    refetch_after: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let mut resp = http.get(url).send().await.map_err(|e| e.without_url().to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status().as_u16()));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url().to_string())? {
        if out.len() + chunk.len() > MAX_DOC {
            return Err(format!("{url}: document too large"));
        }
        out.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&out).map_err(|_| format!("{url}: not JSON"))
}

impl KeyCache {
    pub fn new(source: KeySource, refetch_after: Duration) -> KeyCache {
        KeyCache {
            http: crate::client::api_client(Some(Duration::from_secs(15))),
            source,
            refetch_after,
            state: Mutex::new(State::default()),
        }
    }

    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
        let jwks_url = match &self.source {
            KeySource::Jwks(u) => u.clone(),
            KeySource::OpenId(meta) => {
                let doc = get_json(&self.http, meta).await?;
                let Some(u) = doc["jwks_uri"].as_str() else {
                    return Err(format!("{meta}: no jwks_uri"));
                };
                // Keys named by an https document come over https too.
                if meta.starts_with("https://") && !u.starts_with("https://") {
                    return Err(format!("{meta}: jwks_uri is not https"));
                }
                u.to_string()
            }
        };
        let keys = jwt::parse_jwks(&get_json(&self.http, &jwks_url).await?);
        if keys.is_empty() {
            return Err(format!("{jwks_url}: no RSA signing keys"));
        }
        Ok(keys)
    }

    /// The keys to verify `token` with: the cached ones, fetched when missing, older than
    /// [`MAX_AGE`], or lacking the token's `kid` (at most once per `refetch_after`). The
    /// token's algorithm is checked first: a token that cannot be RS256 fetches nothing.
    pub async fn keys_for(&self, token: &str) -> Result<Vec<Jwk>, KeysError> {
        let kid = jwt::kid(token)?;
        let mut st = self.state.lock().await;
        let stale = st.fetched.is_none_or(|t| t.elapsed() > MAX_AGE);
        let missing = !st.keys.iter().any(|k| k.kid == kid);
        let may_refetch = st.fetched.is_none_or(|t| t.elapsed() >= self.refetch_after);
        if stale || (missing && may_refetch) {
            match self.fetch().await {
                Ok(keys) => {
                    st.keys = keys;
                    st.fetched = Some(Instant::now());
                }
                // Keys we still hold keep working while the issuer is unreachable.
                Err(e) if st.keys.is_empty() || missing => return Err(KeysError::Unavailable(e)),
                Err(e) => tracing::warn!(error = %e, "could not refresh signing keys; using the cached ones"),
            }
        }
        Ok(st.keys.clone())
    }
}
