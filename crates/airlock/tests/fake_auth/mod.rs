//! A local OAuth2 authorization server and GitHub App API, enforcing what RFC 6749, RFC 7636 and
//! GitHub's docs require of a client: the authorization request (`response_type=code`, the
//! registered client and redirect URI, an S256 challenge), client authentication at the token
//! endpoint (HTTP Basic or form, as registered), the grant types (`authorization_code` with the
//! PKCE verifier and the same redirect URI, once; `refresh_token`), rotated refresh tokens (the
//! old one dies), revocation, access tokens that expire in seconds; and for GitHub, the App JWT
//! (RS256 signature with the App's public key, `iss`, `iat` in the past, `exp` at most 10 minutes
//! after `iat`) on `POST /app/installations/{id}/access_tokens`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use http_body_util::BodyExt;

use crate::support::{Custom, Seen, Upstream, upstream_custom};

pub const CLIENT_ID: &str = "airlock-test-client";
pub const CLIENT_SECRET: &str = "cs-e2e-CLIENT-SECRET-9b8a7c";
pub const APP_ID: &str = "424242";
pub const INSTALLATION: u64 = 777;

#[derive(Default)]
pub struct St {
    /// code → (challenge, redirect_uri, used)
    codes: Mutex<HashMap<String, (String, String, bool)>>,
    refresh: Mutex<HashMap<String, bool>>,
    /// access token → expiry
    access: Mutex<HashMap<String, Instant>>,
    /// Every token issued (access, refresh, installation), to grep logs and audit for.
    pub issued: Mutex<Vec<String>>,
    pub violations: Mutex<Vec<String>>,
    pub refresh_grants: AtomicUsize,
    pub code_grants: AtomicUsize,
    pub installation_grants: AtomicUsize,
    counter: AtomicUsize,
    pub ttl: Mutex<Duration>,
    /// Client authentication required at the token endpoint: "basic" or "post".
    pub client_auth: Mutex<String>,
    /// The App's public key (DER RSAPublicKey).
    pub app_key: Mutex<Vec<u8>>,
}

pub struct FakeAuth {
    pub url: String,
    pub st: Arc<St>,
}

fn violation(st: &St, what: String) -> Response {
    st.violations.lock().unwrap().push(what.clone());
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_request", "error_description": what})),
    )
        .into_response()
}

fn new_token(st: &St, prefix: &str) -> String {
    let n = st.counter.fetch_add(1, Ordering::SeqCst);
    let t = format!("{prefix}{n:04}-{}", URL_SAFE_NO_PAD.encode(rand_bytes()));
    st.issued.lock().unwrap().push(t.clone());
    t
}

fn rand_bytes() -> [u8; 12] {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let h = Sha256::digest(d.to_le_bytes());
    h[..12].try_into().unwrap()
}

impl FakeAuth {
    pub async fn start(ttl: Duration, client_auth: &str) -> FakeAuth {
        let st = Arc::new(St::default());
        *st.ttl.lock().unwrap() = ttl;
        *st.client_auth.lock().unwrap() = client_auth.into();
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/app/installations/{id}/access_tokens", post(installation))
            .with_state(st.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        FakeAuth { url, st }
    }

    /// True when `token` is a live access token (the resource server's check).
    pub fn valid(&self, token: &str) -> bool {
        self.st
            .access
            .lock()
            .unwrap()
            .get(token)
            .is_some_and(|e| *e > Instant::now())
    }

    /// A live refresh token, as if the operator had consented.
    pub fn seed_refresh_token(&self) -> String {
        let rt = new_token(&self.st, "1//e2e-refresh-");
        self.st.refresh.lock().unwrap().insert(rt.clone(), true);
        rt
    }

    pub fn revoke_refresh_tokens(&self) {
        for v in self.st.refresh.lock().unwrap().values_mut() {
            *v = false;
        }
    }

    pub fn issued(&self) -> Vec<String> {
        self.st.issued.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }
}

async fn authorize(State(st): State<Arc<St>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code" {
        return violation(&st, "response_type must be code".into());
    }
    if get("client_id") != CLIENT_ID {
        return violation(&st, "unknown client_id".into());
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
        return violation(&st, "PKCE with S256 is required".into());
    }
    let redirect = get("redirect_uri");
    if !redirect.starts_with("http://127.0.0.1:") || get("state").is_empty() {
        return violation(&st, "redirect_uri and state are required".into());
    }
    let code = new_token(&st, "code-");
    st.codes
        .lock()
        .unwrap()
        .insert(code.clone(), (get("code_challenge"), redirect.clone(), false));
    let mut loc = url::Url::parse(&redirect).unwrap();
    loc.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    (StatusCode::FOUND, [(header::LOCATION, loc.to_string())]).into_response()
}

fn client_ok(st: &St, h: &HeaderMap, form: &HashMap<String, String>) -> Result<(), String> {
    let basic = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let want = st.client_auth.lock().unwrap().clone();
    match (want.as_str(), basic) {
        ("basic", Some(b)) => {
            let raw = STANDARD.decode(b).map_err(|_| "bad basic")?;
            let s = String::from_utf8(raw).map_err(|_| "bad basic")?;
            // RFC 6749 §2.3.1: each part is form-encoded before they are joined.
            let (id, secret) = s.split_once(':').ok_or("bad basic")?;
            let dec = |v: &str| {
                url::form_urlencoded::parse(format!("x={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            if dec(id).as_deref() != Some(CLIENT_ID)
                || dec(secret).as_deref() != Some(CLIENT_SECRET)
                || form.contains_key("client_secret")
            {
                return Err("wrong client credentials (basic)".into());
            }
            Ok(())
        }
        ("post", None) => {
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
            {
                return Err("wrong client credentials (post)".into());
            }
            Ok(())
        }
        _ => Err(format!("client authentication must be {want}")),
    }
}

fn grant(st: &St, refresh: Option<String>) -> Response {
    let ttl = *st.ttl.lock().unwrap();
    let access = new_token(st, "ya29.e2e-access-");
    st.access.lock().unwrap().insert(access.clone(), Instant::now() + ttl);
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": ttl.as_secs()});
    if let Some(r) = refresh {
        body["refresh_token"] = r.into();
    }
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

async fn token(State(st): State<Arc<St>>, h: HeaderMap, body: Bytes) -> Response {
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return violation(&st, format!("token request content type {ct}"));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if let Err(e) = client_ok(&st, &h, &form) {
        st.violations.lock().unwrap().push(e);
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    // Slow enough that concurrent refreshes would overlap if they were not single-flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let invalid_grant = || (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            st.code_grants.fetch_add(1, Ordering::SeqCst);
            let code = form.get("code").cloned().unwrap_or_default();
            let mut codes = st.codes.lock().unwrap();
            let Some((challenge, redirect, used)) = codes.get_mut(&code) else {
                return invalid_grant();
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if *used
                || form.get("redirect_uri") != Some(redirect)
                || URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge
            {
                drop(codes);
                st.violations
                    .lock()
                    .unwrap()
                    .push("code exchange without the matching verifier or redirect".into());
                return invalid_grant();
            }
            *used = true;
            drop(codes);
            let rt = new_token(&st, "1//e2e-refresh-");
            st.refresh.lock().unwrap().insert(rt.clone(), true);
            grant(&st, Some(rt))
        }
        Some("refresh_token") => {
            st.refresh_grants.fetch_add(1, Ordering::SeqCst);
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let mut live = st.refresh.lock().unwrap();
            if live.get(&rt) != Some(&true) {
                return invalid_grant();
            }
            // Rotation: the old refresh token dies with this use.
            live.insert(rt, false);
            drop(live);
            let next = new_token(&st, "1//e2e-refresh-");
            st.refresh.lock().unwrap().insert(next.clone(), true);
            grant(&st, Some(next))
        }
        other => violation(&st, format!("unsupported grant_type {other:?}")),
    }
}

async fn installation(State(st): State<Arc<St>>, Path(id): Path<u64>, h: HeaderMap) -> Response {
    if id != INSTALLATION {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not Found"}))).into_response();
    }
    let jwt = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let key = st.app_key.lock().unwrap().clone();
    let Some(claims) = airlock_credentials::jwt::verify(jwt, &key) else {
        st.violations
            .lock()
            .unwrap()
            .push("app JWT signature does not verify".into());
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(0));
    if claims["iss"] != APP_ID || iat > now - 30 || exp <= now || exp - iat > 600 {
        st.violations
            .lock()
            .unwrap()
            .push(format!("bad app JWT claims {claims}"));
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    if h.get(header::ACCEPT).and_then(|v| v.to_str().ok()) != Some("application/vnd.github+json") {
        st.violations
            .lock()
            .unwrap()
            .push("Accept must be application/vnd.github+json".into());
    }
    st.installation_grants.fetch_add(1, Ordering::SeqCst);
    let ttl = *st.ttl.lock().unwrap();
    let token = new_token(&st, "ghs_e2eInstallation");
    st.access.lock().unwrap().insert(token.clone(), Instant::now() + ttl);
    let exp = now + ttl.as_secs() as i64;
    let expires_at = crate::support::time::rfc3339(exp);
    (
        StatusCode::CREATED,
        axum::Json(json!({"token": token, "expires_at": expires_at})),
    )
        .into_response()
}

/// A resource server (TLS, on localhost) that answers only requests carrying a live token from
/// `fake`, as `Bearer` or as the password of `x-access-token`, and echoes the header back.
pub async fn resource(fake: &Arc<FakeAuth>) -> Upstream {
    let fake = fake.clone();
    let custom: Custom = Arc::new(move |seen: &Seen| {
        let auth = seen.header("authorization").unwrap_or("").to_string();
        let token = match auth.split_once(' ') {
            Some(("Bearer", t)) => t.to_string(),
            Some(("Basic", b)) => String::from_utf8(STANDARD.decode(b).unwrap_or_default())
                .unwrap_or_default()
                .strip_prefix("x-access-token:")
                .unwrap_or("")
                .to_string(),
            _ => String::new(),
        };
        let (status, body) = if fake.valid(&token) {
            (200, format!("ok, you sent {token}"))
        } else {
            (401, "token not live".to_string())
        };
        Some(
            http::Response::builder()
                .status(status)
                .header("x-echo", auth)
                .body(
                    http_body_util::Full::new(Bytes::from(body))
                        .map_err(|e| match e {})
                        .boxed(),
                )
                .unwrap(),
        )
    });
    upstream_custom(true, Some(custom)).await
}

/// An OAuth2 connection `mail` (generic provider at `fake`, client secret from
/// `MAIL_CLIENT_SECRET`, HTTP Basic client authentication) for agent `mailbot`, bound to
/// localhost, its placeholder in the sandbox's `MAIL_TOKEN`; one rule allows localhost.
pub fn oauth_config(fake: &FakeAuth) -> String {
    format!(
        r#"
[[agents]]
name = "mailbot"
secrets = ["mail"]

[secrets.mail]
kind = "oauth2"
provider = "generic"
auth_url = "{url}/authorize"
token_url = "{url}/token"
scopes = ["mail.send", "offline_access"]
client_id = "{CLIENT_ID}"
client_secret = "env:MAIL_CLIENT_SECRET"
client_auth = "basic"
hosts = ["localhost"]
placeholder = "airlock-mail-placeholder"
env = "MAIL_TOKEN"

[[rules]]
name = "mail api"
hosts = ["localhost"]
action = "allow"
"#,
        url = fake.url
    )
}

/// The GitHub App's private key (a test key), sealed as secret `gh`.
pub const APP_KEY: &str = include_str!("../../../airlock-credentials/tests/data/github_app_test_key.pem");

/// A GitHub App secret `gh` (the App at `fake`) for agent `coder`, bound to localhost, its
/// placeholder in the sandbox's `GH_TOKEN`; one rule allows localhost.
pub fn github_app_config(fake: &FakeAuth) -> String {
    format!(
        r#"
[[agents]]
name = "coder"
secrets = ["gh"]

[secrets.gh]
kind = "github_app"
app_id = {APP_ID}
installation_id = {INSTALLATION}
api_url = "{url}"
hosts = ["localhost"]
placeholder = "airlock-gh-placeholder"
env = "GH_TOKEN"

[[rules]]
name = "github"
hosts = ["localhost"]
action = "allow"
"#,
        url = fake.url
    )
}

impl FakeAuth {
    /// The fake GitHub checks App JWTs with [`APP_KEY`]'s public key.
    pub fn trust_app_key(&self) {
        let key = airlock_credentials::jwt::key_pair(&airlock_vault::SecretBytes::new(APP_KEY.as_bytes().to_vec()))
            .expect("the test App key");
        *self.st.app_key.lock().unwrap() = key.public().as_ref().to_vec();
    }
}
