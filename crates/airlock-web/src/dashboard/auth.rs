//! Sign-in per person: argon2id passwords, a random session token in an HttpOnly,
//! SameSite=Strict cookie (only its SHA-256 is stored), and a per-session CSRF token that
//! every form posts back. Secrets (passwords, tokens) are never logged.

use std::sync::LazyLock;

use airlock_approvals::Hub;
use airlock_store::SessionRow;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{html, html_page, now_ms, redirect};
use crate::ControlState;

pub(crate) const COOKIE: &str = "airlock_session";
const SESSION_MS: i64 = 12 * 3600 * 1000;
/// The one answer to every failed sign-in, so it never tells who exists.
pub(crate) const WRONG: &str = "wrong person or password";

/// An argon2id PHC string for `pw` with a random salt (default parameters: 19 MiB, t=2, p=1),
/// as stored by `airlock person passwd`.
pub fn hash_password(pw: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("could not hash the password: {e}"))
}

fn verify(phc: &str, pw: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// Verified against when the person is unknown or has no password, so every attempt costs
/// one full argon2 verification.
static DUMMY: LazyLock<String> = LazyLock::new(|| hash_password("airlock: no such person").unwrap_or_default());
/// Each verification holds ~19 MiB for tens of milliseconds: bound how many run at once.
static VERIFYING: Semaphore = Semaphore::const_new(4);

/// 32 random bytes, URL-safe base64 (43 characters).
pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) use airlock_channels::token::ct_eq;

/// The session cookie's value, if the request carries one.
fn cookie_token(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A signed-in person.
pub(crate) struct Session {
    pub(crate) person: String,
    pub(crate) csrf: String,
    pub(crate) expires_ms: i64,
}

/// How to turn someone away: a page redirects to the sign-in form, an action is refused.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Page,
    Action,
}

/// The hub and the signed-in person, or the answer for everyone else.
pub(crate) async fn require(s: &ControlState, h: &HeaderMap, need: Need) -> Result<(Hub, Session), Response> {
    let Some(hub) = s.hub.clone() else {
        return Err(super::not_configured(need));
    };
    let refuse = || match need {
        Need::Page => redirect("/dashboard/login"),
        Need::Action => forbidden("sign in first"),
    };
    let Some(token) = cookie_token(h) else {
        return Err(refuse());
    };
    let row = match s.store.session(&token_hash(&token), now_ms() as i64).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(refuse()),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: session lookup failed");
            return Err(unavailable());
        }
    };
    // Someone removed from [people] since signing in is signed out.
    if hub.people().get(&row.person).is_none() {
        return Err(refuse());
    }
    Ok((
        hub,
        Session {
            person: row.person,
            csrf: row.csrf,
            expires_ms: row.expires_ms,
        },
    ))
}

/// Why a POST is refused, if it is: it must carry the session's CSRF token, and a browser's
/// `Origin`, when sent, must be this host (defence in depth on top of SameSite=Strict).
pub(crate) fn post_refusal(h: &HeaderMap, sess: Option<&Session>, csrf: Option<&str>) -> Option<&'static str> {
    if !same_origin(h) {
        return Some("cross-origin request refused");
    }
    match sess {
        Some(sess) if !ct_eq(csrf.unwrap_or("").as_bytes(), sess.csrf.as_bytes()) => {
            Some("the form's CSRF token is missing or wrong; reload the page")
        }
        _ => None,
    }
}

/// Under `Referrer-Policy: no-referrer` browsers send `Origin: null` for the dashboard's own
/// forms, so "null" says nothing either way; a real foreign origin is refused.
fn same_origin(h: &HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN).filter(|o| o.as_bytes() != b"null") else {
        return true;
    };
    let (Ok(origin), Some(host)) = (origin.to_str(), h.get(header::HOST).and_then(|v| v.to_str().ok())) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

pub(crate) fn forbidden(msg: &str) -> Response {
    html_page(StatusCode::FORBIDDEN, "Refused", None, &html::message(false, msg), None)
}

fn unavailable() -> Response {
    html_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        None,
        &html::message(false, "the dashboard's store is unavailable; try again shortly"),
        None,
    )
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    html_page(status, "Sign in", None, &html::login(error), None)
}

pub(crate) async fn login_form(State(s): State<ControlState>, h: HeaderMap) -> Response {
    if s.hub.is_none() {
        return super::not_configured(Need::Page);
    }
    if require(&s, &h, Need::Page).await.is_ok() {
        return redirect("/dashboard");
    }
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    person: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn login(
    State(s): State<ControlState>,
    h: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(hub) = s.hub.clone() else {
        return super::not_configured(Need::Action);
    };
    if let Some(m) = post_refusal(&h, None, None) {
        return forbidden(m);
    }
    let Ok(Form(f)) = form else {
        return login_page(StatusCode::BAD_REQUEST, Some(WRONG));
    };
    let person = f.person.trim().to_string();
    let known = hub.people().get(&person).is_some();
    // Looked up for everyone, so a known name costs the same store round trip as an unknown one.
    let stored = match s.store.password(&person).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: password lookup failed");
            return unavailable();
        }
    };
    let (phc, real) = match stored {
        Some(p) if known => (p, true),
        _ => (String::new(), false),
    };
    let Ok(_permit) = VERIFYING.acquire().await else {
        return unavailable();
    };
    let password = f.password;
    let verified = tokio::task::spawn_blocking(move || {
        let phc = if real { phc.as_str() } else { DUMMY.as_str() };
        verify(phc, &password)
    })
    .await
    .unwrap_or(false);
    if !(verified && real) {
        tracing::info!("dashboard: a sign-in was refused");
        return login_page(StatusCode::UNAUTHORIZED, Some(WRONG));
    }
    // A new token every time: a cookie planted before sign-in never becomes a session.
    if let Some(old) = cookie_token(&h) {
        let _ = s.store.delete_session(&token_hash(&old)).await;
    }
    let token = random_token();
    let row = SessionRow {
        token_hash: token_hash(&token),
        person: person.clone(),
        csrf: random_token(),
        expires_ms: now_ms() as i64 + SESSION_MS,
    };
    if let Err(e) = s.store.put_session(&row).await {
        tracing::warn!(error = %e, "dashboard: could not record a session");
        return unavailable();
    }
    tracing::info!(person = %person, "dashboard: signed in");
    let mut res = redirect("/dashboard");
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        SESSION_MS / 1000,
        if over_https(&h) { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The control plane speaks plain HTTP on loopback by default; behind a TLS-terminating
/// proxy the cookie is marked Secure. A forged header only makes the forger's cookie stricter.
fn over_https(h: &HeaderMap) -> bool {
    let proto = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    proto("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || h.get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|o| o.starts_with("https://"))
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

pub(crate) async fn logout(
    State(s): State<ControlState>,
    h: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (_, sess) = match require(&s, &h, Need::Action).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let csrf = form.ok().map(|Form(f)| f.csrf);
    if let Some(m) = post_refusal(&h, Some(&sess), csrf.as_deref()) {
        return forbidden(m);
    }
    if let Some(token) = cookie_token(&h)
        && let Err(e) = s.store.delete_session(&token_hash(&token)).await
    {
        tracing::warn!(error = %e, "dashboard: could not delete a session");
        return unavailable();
    }
    let mut res = redirect("/dashboard/login");
    res.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("airlock_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    res.into_response()
}
