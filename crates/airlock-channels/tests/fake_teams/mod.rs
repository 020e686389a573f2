//! A local fake of the parts of Microsoft Teams the channel uses, enforcing the documented wire
//! format: the Entra token endpoint (client credentials, form-encoded, scope
//! `https://api.botframework.com/.default`), the Bot Framework's OpenID metadata and signing
//! keys (rotatable), and the Connector (`POST`/`PUT {serviceUrl}/v3/conversations/{id}/activities`
//! with `Authorization: Bearer <access token>`, Adaptive Card attachments). It mints the
//! activities Teams sends to a bot, signed RS256 with test keys, and every way of getting
//! them wrong.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_channels::jwt::SigningKey;
use airlock_channels::text::is_deceptive;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const APP_ID: &str = "5b1c0f3e-9e41-4c11-8b7a-0d5e4a7f2c10";
pub const PASSWORD: &str = "fake~teams~client~secret~Q8x.vZ";
pub const ACCESS: &str = "eyFAKE.teams-access-token.for-the-connector";
pub const ISSUER: &str = "https://api.botframework.com";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const KEY_A: &str = include_str!("../keys/test-rsa-a.pem");
const KEY_B: &str = include_str!("../keys/test-rsa-b.pem");
const KEY_X: &str = include_str!("../keys/test-rsa-x.pem");
/// Labels the card may show as TextBlocks: never agent text.
pub const LABELS: &[&str] = &[
    "Agent", "Rule", "Rules", "Request", "Query", "Headers", "Summary", "Body", "Status",
];

/// How an activity's token is minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mint {
    Valid,
    Expired,
    WrongAudience,
    WrongIssuer,
    /// Signed by a key the Bot Framework never published.
    UnknownKey,
    /// Valid, but its serviceUrl claim names another host than the activity.
    ServiceUrlMismatch,
    /// No Authorization header.
    Unsigned,
}

struct Inner {
    /// (conversation, activity) as posted or put.
    posts: Mutex<Vec<(String, Value)>>,
    puts: Mutex<Vec<(String, String, Value)>>,
    violations: Mutex<Vec<String>>,
    events: mpsc::UnboundedSender<String>,
    /// Published keys: the current signing key's kid.
    rotated: Mutex<bool>,
    token_calls: AtomicU32,
    key_fetches: AtomicU32,
    n: AtomicU32,
}

impl Inner {
    fn violation(&self, v: String) {
        eprintln!("fake teams: VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    events: mpsc::UnboundedReceiver<String>,
}

fn jwk(pem: &str, kid: &str) -> Value {
    let k = SigningKey::from_pem(pem).unwrap().public(kid);
    json!({"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid, "n": URL_SAFE_NO_PAD.encode(&k.n),
           "e": URL_SAFE_NO_PAD.encode(&k.e), "endorsements": ["msteams", "webchat", "skype"]})
}

async fn token(State(st): State<Arc<Inner>>, Path(tenant): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    st.token_calls.fetch_add(1, Ordering::SeqCst);
    let _ = st.events.send("token".into());
    if h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/x-www-form-urlencoded") {
        st.violation("token: not form-encoded".into());
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str);
    if tenant != "botframework.com" && tenant != TENANT {
        st.violation(format!("token: unknown tenant {tenant}"));
    }
    if get("grant_type") != Some("client_credentials") || get("scope") != Some("https://api.botframework.com/.default")
    {
        st.violation(format!("token: grant/scope {form:?}"));
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_request"}))).into_response();
    }
    if get("client_id") != Some(APP_ID) || get("client_secret") != Some(PASSWORD) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": ACCESS}))
        .into_response()
}

fn authorized(st: &Inner, h: &HeaderMap) -> bool {
    let ok = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {ACCESS}"));
    if !ok {
        st.violation("a Connector call without `Authorization: Bearer <access token>`".into());
    }
    ok
}

/// Adaptive Card checks: a version Teams renders, known element types, Universal Actions.
pub fn validate_card(c: &Value) -> Vec<String> {
    let mut errs = vec![];
    if c["type"] != "AdaptiveCard"
        || !matches!(
            c["version"].as_str(),
            Some("1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5")
        )
    {
        errs.push(format!("not an AdaptiveCard ≤ 1.5: {} {}", c["type"], c["version"]));
    }
    for el in c["body"].as_array().into_iter().flatten() {
        match el["type"].as_str() {
            Some("TextBlock") if el["text"].is_string() => {}
            Some("RichTextBlock") => {
                for i in el["inlines"].as_array().into_iter().flatten() {
                    if i["type"] != "TextRun" || !i["text"].is_string() {
                        errs.push(format!("RichTextBlock inline: {i}"));
                    }
                }
            }
            _ => errs.push(format!("unsupported element {el}")),
        }
    }
    for a in c["actions"].as_array().into_iter().flatten() {
        let ok = match a["type"].as_str() {
            Some("Action.Execute") => a["verb"].is_string() && c["version"].as_str() >= Some("1.4"),
            Some("Action.Submit") => true,
            _ => false,
        };
        if !ok || !a["title"].is_string() || !a["data"].is_object() {
            errs.push(format!("action: {a}"));
        }
    }
    errs
}

fn validate_activity(st: &Inner, a: &Value) -> bool {
    if a["type"] != "message" {
        st.violation(format!("activity type {}", a["type"]));
        return false;
    }
    let atts = a["attachments"].as_array().cloned().unwrap_or_default();
    if atts.is_empty() && !a["text"].is_string() {
        st.violation("an activity with neither text nor attachments".into());
        return false;
    }
    for att in &atts {
        if att["contentType"] != "application/vnd.microsoft.card.adaptive" {
            st.violation(format!("attachment {}", att["contentType"]));
        }
        for e in validate_card(&att["content"]) {
            st.violation(format!("card: {e}"));
        }
    }
    if serde_json::to_vec(a).unwrap().len() > 28_000 {
        st.violation("activity over Teams' ~28 KB message limit".into());
        return false;
    }
    true
}

async fn send(State(st): State<Arc<Inner>>, Path(conv): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    if !authorized(&st, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(a) = serde_json::from_slice::<Value>(&body) else {
        st.violation("activity is not JSON".into());
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !validate_activity(&st, &a) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let id = format!("17000000000{}", st.n.fetch_add(1, Ordering::SeqCst) + 1);
    let mut stored = a.clone();
    stored["id"] = json!(id);
    st.posts.lock().unwrap().push((conv.clone(), stored));
    let _ = st.events.send(format!("posted {conv} {id}"));
    (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
}

async fn update(
    State(st): State<Arc<Inner>>,
    Path((conv, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&st, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(a) = serde_json::from_slice::<Value>(&body) else {
        st.violation("activity is not JSON".into());
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !validate_activity(&st, &a) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    if !st
        .posts
        .lock()
        .unwrap()
        .iter()
        .any(|(c, p)| *c == conv && p["id"] == id)
    {
        st.violation(format!("update of unknown activity {conv} {id}"));
        return StatusCode::NOT_FOUND.into_response();
    }
    st.puts.lock().unwrap().push((conv.clone(), id.clone(), a));
    let _ = st.events.send(format!("updated {conv} {id}"));
    axum::Json(json!({"id": id})).into_response()
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            posts: Mutex::default(),
            puts: Mutex::default(),
            violations: Mutex::default(),
            events: tx,
            rotated: Mutex::new(false),
            token_calls: AtomicU32::new(0),
            key_fetches: AtomicU32::new(0),
            n: AtomicU32::new(0),
        });
        let meta = move || async move {
            axum::Json(json!({
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": format!("http://{addr}/v1/.well-known/keys"),
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }))
        };
        let keys = |State(st): State<Arc<Inner>>| async move {
            st.key_fetches.fetch_add(1, Ordering::SeqCst);
            let keys = match *st.rotated.lock().unwrap() {
                false => vec![jwk(KEY_A, "bf-key-a")],
                true => vec![jwk(KEY_B, "bf-key-b")],
            };
            axum::Json(json!({"keys": keys}))
        };
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1/.well-known/openidconfiguration", get(meta))
            .route("/v1/.well-known/keys", get(keys))
            .route("/v3/conversations/{conv}/activities", post(send))
            .route("/v3/conversations/{conv}/activities/{id}", put(update))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { addr, inner, events }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/botframework.com/oauth2/v2.0/token", self.addr)
    }

    pub fn openid_url(&self) -> String {
        format!("http://{}/v1/.well-known/openidconfiguration", self.addr)
    }

    /// The serviceUrl activities name (with the trailing slash Teams uses).
    pub fn service_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Publishes a new signing key in place of the old one.
    pub fn rotate(&self) {
        *self.inner.rotated.lock().unwrap() = true;
    }

    pub fn token_calls(&self) -> u32 {
        self.inner.token_calls.load(Ordering::SeqCst)
    }

    pub fn key_fetches(&self) -> u32 {
        self.inner.key_fetches.load(Ordering::SeqCst)
    }

    /// (conversation, activity) of every POSTed activity.
    pub fn posts(&self) -> Vec<(String, Value)> {
        self.inner.posts.lock().unwrap().clone()
    }

    /// (conversation, activity id, activity) of every update.
    pub fn puts(&self) -> Vec<(String, String, Value)> {
        self.inner.puts.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().unwrap().clone()
    }

    /// The personal conversation id of an Entra user.
    pub fn conversation_of(aad: &str) -> String {
        format!("a:1{}", aad.replace('-', ""))
    }

    /// The bearer token the Bot Framework would put on `activity`, minted `how`.
    pub fn bearer(&self, activity: &Value, how: Mint) -> Option<String> {
        let now = now_secs();
        let mut claims = json!({"iss": ISSUER, "aud": APP_ID, "exp": now + 3600, "nbf": now - 300,
                                "serviceurl": activity["serviceUrl"], "appid": "d6d49420-f39b-4df7-a1dc-d59a935871db"});
        let rotated = *self.inner.rotated.lock().unwrap();
        let (mut pem, mut kid) = if rotated {
            (KEY_B, "bf-key-b")
        } else {
            (KEY_A, "bf-key-a")
        };
        match how {
            Mint::Valid => {}
            Mint::Expired => {
                claims["exp"] = json!(now - 600);
                claims["nbf"] = json!(now - 4200);
            }
            Mint::WrongAudience => claims["aud"] = json!("00000000-another-bot"),
            Mint::WrongIssuer => claims["iss"] = json!("https://sts.windows.net/attacker/"),
            Mint::UnknownKey => (pem, kid) = (KEY_X, "attacker-key"),
            Mint::ServiceUrlMismatch => claims["serviceurl"] = json!("https://smba.trafficmanager.net/amer/"),
            Mint::Unsigned => return None,
        }
        Some(SigningKey::from_pem(pem).unwrap().sign(Some(kid), &claims).unwrap())
    }

    fn base(&self, kind: &str, aad: &str) -> Value {
        let n = self.inner.n.fetch_add(1, Ordering::SeqCst);
        json!({"type": kind, "id": format!("f:{n}"), "channelId": "msteams", "serviceUrl": self.service_url(),
               "timestamp": "2026-12-07T08:00:00.000Z", "locale": "en-US",
               "from": {"id": format!("29:1{aad}"), "name": "Someone", "aadObjectId": aad},
               "conversation": {"id": Fake::conversation_of(aad), "conversationType": "personal", "tenantId": TENANT},
               "recipient": {"id": format!("28:{APP_ID}"), "name": "airlock"},
               "channelData": {"tenant": {"id": TENANT}}})
    }

    /// The user wrote "hi" to the bot in their personal chat.
    pub fn hello(&self, aad: &str) -> Value {
        let mut a = self.base("message", aad);
        a["text"] = json!("hi");
        a
    }

    /// The user installed the app in their personal scope.
    pub fn install(&self, aad: &str) -> Value {
        let mut a = self.base("installationUpdate", aad);
        a["action"] = json!("add");
        a
    }

    /// The user pressed an `Action.Execute` button carrying `token` on the card `activity_id`.
    pub fn press(&self, aad: &str, activity_id: &str, token: &str) -> Value {
        let mut a = self.base("invoke", aad);
        a["name"] = json!("adaptiveCard/action");
        a["replyToId"] = json!(activity_id);
        a["value"] = json!({"action": {"type": "Action.Execute", "verb": "approve", "data": {"airlock": token}},
                            "trigger": "manual"});
        a
    }

    /// The same press from an older client: `Action.Submit`, a message whose value is the data.
    pub fn submit(&self, aad: &str, activity_id: &str, token: &str) -> Value {
        let mut a = self.base("message", aad);
        a["replyToId"] = json!(activity_id);
        a["value"] = json!({"airlock": token});
        a
    }

    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&Fake) -> bool) {
        let wait = async {
            while !done(self) {
                if self.events.recv().await.is_none() {
                    panic!("fake teams: event stream ended");
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("fake teams: timed out waiting for {what}"));
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The card of an activity.
pub fn card_of(activity: &Value) -> &Value {
    &activity["attachments"][0]["content"]
}

/// Agent text only in TextRuns (plain text), TextBlocks only our labels, no hidden
/// characters, the notification preview ours.
pub fn assert_inert(activity: &Value) {
    let card = card_of(activity);
    for el in card["body"].as_array().into_iter().flatten() {
        if el["type"] == "TextBlock" {
            let t = el["text"].as_str().unwrap_or("");
            assert!(LABELS.contains(&t), "agent text in a markdown TextBlock: {t}");
        }
        for i in el["inlines"].as_array().into_iter().flatten() {
            let t = i["text"].as_str().unwrap_or("");
            assert!(!t.chars().any(is_deceptive), "hidden character in {t:?}");
        }
    }
    assert_eq!(activity["summary"], "airlock: an agent's request needs approval");
    assert!(activity.get("text").is_none(), "no markdown text beside the card");
}

/// All TextRun texts, joined: what the approver reads.
pub fn shown(card: &Value) -> String {
    let mut out = String::new();
    for el in card["body"].as_array().into_iter().flatten() {
        for i in el["inlines"].as_array().into_iter().flatten() {
            out.push_str(i["text"].as_str().unwrap_or(""));
            out.push('\n');
        }
    }
    out
}

/// (title, token) of each action.
pub fn actions(card: &Value) -> Vec<(String, String)> {
    card["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["title"].as_str().unwrap_or("").into(),
                a["data"]["airlock"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}
