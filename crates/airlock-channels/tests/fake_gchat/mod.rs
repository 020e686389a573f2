//! A local fake of the parts of Google Chat the channel uses, enforcing the documented wire
//! format: the OAuth token endpoint (JWT bearer grant: an RS256 assertion from the service
//! account, checked with its public key), `GET /v1/spaces:findDirectMessage`, `POST
//! /v1/{space}/messages` and `PATCH /v1/{message}?updateMask=cardsV2` with `Authorization:
//! Bearer` (cardsV2 schema, 32,000-byte message limit), Chat's signing keys (JWKS), and the
//! `CARD_CLICKED` events Chat posts to an app, signed with test keys and every way of getting
//! them wrong.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_channels::jwt::{self, Expect, SigningKey};
use airlock_channels::text::is_deceptive;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const PROJECT: &str = "123456789012";
pub const SA_EMAIL: &str = "airlock-chat@airlock-test.iam.gserviceaccount.com";
pub const ACCESS: &str = "ya29.FAKE-gchat-access-token";
pub const CHAT_ISSUER: &str = "chat@system.gserviceaccount.com";
/// The service account's key (what the operator downloads) and Chat's own signing key.
const SA_KEY: &str = include_str!("../keys/test-rsa-b.pem");
const CHAT_KEY: &str = include_str!("../keys/test-rsa-a.pem");
const ATTACKER_KEY: &str = include_str!("../keys/test-rsa-x.pem");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mint {
    Valid,
    Expired,
    WrongAudience,
    WrongIssuer,
    UnknownKey,
    Unsigned,
}

struct Inner {
    addr: SocketAddr,
    /// Users who added the app: user → their DM space.
    dms: Mutex<HashMap<String, String>>,
    /// message name → message.
    messages: Mutex<Vec<Value>>,
    patches: Mutex<Vec<(String, Value)>>,
    violations: Mutex<Vec<String>>,
    events: mpsc::UnboundedSender<String>,
    token_calls: AtomicU32,
    n: AtomicU32,
    /// Pub/Sub: (ackId, event) not yet acknowledged, and whether each was handed out.
    queue: Mutex<Vec<(String, Value, bool)>>,
    acked: Mutex<Vec<String>>,
    queued: tokio::sync::Notify,
}

impl Inner {
    fn violation(&self, v: String) {
        eprintln!("fake gchat: VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    events: mpsc::UnboundedReceiver<String>,
}

/// The service account key file, as the Cloud console gives it.
pub fn key_file() -> String {
    json!({"type": "service_account", "project_id": "airlock-test", "private_key_id": "sa-key-1",
           "private_key": SA_KEY, "client_email": SA_EMAIL, "client_id": "1000",
           "token_uri": "https://oauth2.googleapis.com/token"})
    .to_string()
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": "INVALID_ARGUMENT"}});
    (status, axum::Json(body)).into_response()
}

async fn token(State(st): State<Arc<Inner>>, body: Bytes) -> Response {
    st.token_calls.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        st.violation(format!("token: grant_type {:?}", form.get("grant_type")));
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let aud = format!("http://{}/token", st.addr);
    let keys = vec![SigningKey::from_pem(SA_KEY).unwrap().public("sa-key-1")];
    let expect = Expect {
        issuers: &[SA_EMAIL],
        audience: &aud,
        skew_secs: 0,
    };
    let assertion = form.get("assertion").map(String::as_str).unwrap_or("");
    match jwt::verify(assertion, &keys, &expect, now_secs()) {
        Ok(v)
            if v.claims.get("scope").and_then(Value::as_str).is_some_and(|s| {
                s.split(' ').any(|s| s == "https://www.googleapis.com/auth/chat.bot")
                    && s.split(' ').all(|s| s.starts_with("https://www.googleapis.com/auth/"))
            }) && v.claims.get("exp").and_then(Value::as_u64).unwrap_or(0) <= now_secs() + 3600 =>
        {
            axum::Json(json!({"access_token": ACCESS, "expires_in": 3599, "token_type": "Bearer"})).into_response()
        }
        other => {
            st.violation(format!("token: bad assertion {other:?}"));
            error(StatusCode::BAD_REQUEST, "invalid_grant")
        }
    }
}

fn authorized(st: &Inner, h: &HeaderMap) -> bool {
    let ok = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {ACCESS}"));
    if !ok {
        st.violation("a Chat API call without `Authorization: Bearer <access token>`".into());
    }
    ok
}

/// cardsV2 checks: known widgets, text paragraphs, buttons calling a function.
pub fn validate_cards(m: &Value) -> Vec<String> {
    let mut errs = vec![];
    for c in m["cardsV2"].as_array().into_iter().flatten() {
        if !c["cardId"].is_string() || !c["card"]["sections"].is_array() {
            errs.push(format!("cardsV2 entry {c}"));
        }
        for s in c["card"]["sections"].as_array().into_iter().flatten() {
            for w in s["widgets"].as_array().into_iter().flatten() {
                if w["textParagraph"]["text"].is_string() {
                    continue;
                }
                let buttons = w["buttonList"]["buttons"].as_array();
                let ok = buttons.is_some_and(|b| {
                    b.iter().all(|b| {
                        b["text"].is_string()
                            && b["onClick"]["action"]["function"].is_string()
                            && b["onClick"]["action"]["parameters"]
                                .as_array()
                                .is_some_and(|p| p.iter().all(|p| p["key"].is_string() && p["value"].is_string()))
                    })
                });
                if !ok {
                    errs.push(format!("widget {w}"));
                }
            }
        }
    }
    if serde_json::to_vec(m).unwrap().len() > 32_000 {
        errs.push("message over 32,000 bytes".into());
    }
    errs
}

async fn find_dm(State(st): State<Arc<Inner>>, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let _ = st.events.send("findDirectMessage".into());
    if !authorized(&st, &h) {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let user = q.get("name").cloned().unwrap_or_default();
    match st.dms.lock().unwrap().get(&user) {
        Some(space) => {
            axum::Json(json!({"name": space, "spaceType": "DIRECT_MESSAGE", "singleUserBotDm": true})).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Direct message space not found"),
    }
}

async fn create(State(st): State<Arc<Inner>>, Path(space): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    if !authorized(&st, &h) {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let Ok(mut m) = serde_json::from_slice::<Value>(&body) else {
        st.violation("message is not JSON".into());
        return error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let errs = validate_cards(&m);
    for e in &errs {
        st.violation(format!("card: {e}"));
    }
    if !errs.is_empty() {
        return error(StatusCode::BAD_REQUEST, "invalid card");
    }
    let space = format!("spaces/{space}");
    if !st.dms.lock().unwrap().values().any(|s| *s == space) {
        st.violation(format!("message to unknown space {space}"));
        return error(StatusCode::NOT_FOUND, "space not found");
    }
    let name = format!("{space}/messages/m{}.m{0}", st.n.fetch_add(1, Ordering::SeqCst));
    m["name"] = json!(name);
    m["space"] = json!({"name": space});
    st.messages.lock().unwrap().push(m.clone());
    let _ = st.events.send(format!("created {name}"));
    axum::Json(m).into_response()
}

async fn patch(
    State(st): State<Arc<Inner>>,
    Path((space, msg)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if !authorized(&st, &h) {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let name = format!("spaces/{space}/messages/{msg}");
    let Ok(m) = serde_json::from_slice::<Value>(&body) else {
        st.violation("patch is not JSON".into());
        return error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let mask: HashSet<&str> = q.get("updateMask").map(|m| m.split(',').collect()).unwrap_or_default();
    if !mask.contains("cardsV2") && !mask.contains("cards_v2") {
        st.violation(format!("patch without updateMask=cardsV2: {q:?}"));
        return error(StatusCode::BAD_REQUEST, "updateMask");
    }
    for e in validate_cards(&m) {
        st.violation(format!("card: {e}"));
    }
    if !st.messages.lock().unwrap().iter().any(|x| x["name"] == name) {
        st.violation(format!("patch of unknown message {name}"));
        return error(StatusCode::NOT_FOUND, "message not found");
    }
    st.patches.lock().unwrap().push((name.clone(), m.clone()));
    let _ = st.events.send(format!("patched {name}"));
    axum::Json(m).into_response()
}

pub const SUBSCRIPTION: &str = "projects/airlock-test/subscriptions/chat-events";

/// `POST {subscription}:pull` (waits up to 2 s for a message) and `:acknowledge`.
async fn pubsub(
    State(st): State<Arc<Inner>>,
    Path((p, sub)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&st, &h) {
        return error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let Some((sub, verb)) = sub.split_once(':') else {
        return error(StatusCode::NOT_FOUND, "no method");
    };
    if format!("projects/{p}/subscriptions/{sub}") != SUBSCRIPTION {
        return error(StatusCode::NOT_FOUND, "Resource not found");
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    match verb {
        "pull" => {
            let max = v["maxMessages"].as_u64().unwrap_or(0);
            if max == 0 {
                st.violation("pull without maxMessages".into());
                return error(StatusCode::BAD_REQUEST, "maxMessages");
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                let notified = st.queued.notified();
                let out: Vec<Value> = {
                    let mut q = st.queue.lock().unwrap();
                    q.iter_mut()
                        .filter(|(_, _, out)| !*out)
                        .take(max as usize)
                        .map(|(id, e, out)| {
                            *out = true;
                            let data = base64::engine::general_purpose::STANDARD.encode(e.to_string());
                            json!({"ackId": id, "message": {"data": data, "messageId": id,
                                                           "publishTime": "2026-12-07T08:00:00Z"}})
                        })
                        .collect()
                };
                if !out.is_empty() {
                    let _ = st.events.send("pulled".into());
                    return axum::Json(json!({"receivedMessages": out})).into_response();
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return axum::Json(json!({})).into_response();
                }
            }
        }
        "acknowledge" => {
            let ids: Vec<String> = v["ackIds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            st.queue.lock().unwrap().retain(|(id, _, _)| !ids.contains(id));
            st.acked.lock().unwrap().extend(ids);
            let _ = st.events.send("acked".into());
            axum::Json(json!({})).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "no method"),
    }
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            addr,
            dms: Mutex::default(),
            messages: Mutex::default(),
            patches: Mutex::default(),
            violations: Mutex::default(),
            events: tx,
            token_calls: AtomicU32::new(0),
            n: AtomicU32::new(1),
            queue: Mutex::default(),
            acked: Mutex::default(),
            queued: tokio::sync::Notify::new(),
        });
        let jwks = || async {
            let k = SigningKey::from_pem(CHAT_KEY).unwrap().public("chat-key-1");
            axum::Json(
                json!({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "chat-key-1",
                                        "n": URL_SAFE_NO_PAD.encode(&k.n), "e": URL_SAFE_NO_PAD.encode(&k.e)}]}),
            )
        };
        let app = Router::new()
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .route("/v1/spaces:findDirectMessage", get(find_dm))
            .route("/v1/spaces/{space}/messages", post(create))
            .route("/v1/spaces/{space}/messages/{msg}", axum::routing::patch(patch))
            .route("/pubsub/v1/projects/{p}/subscriptions/{sub}", post(pubsub))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { addr, inner, events }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn pubsub_base(&self) -> String {
        format!("http://{}/pubsub/v1", self.addr)
    }

    /// Chat publishes `event` to the app's topic.
    pub fn publish(&self, event: Value) -> String {
        let id = format!("ack-{}", self.inner.n.fetch_add(1, Ordering::SeqCst));
        self.inner.queue.lock().unwrap().push((id.clone(), event, false));
        self.inner.queued.notify_waiters();
        id
    }

    /// The ack deadline of every pulled, unacknowledged message passes: Pub/Sub delivers
    /// them again.
    pub fn expire_leases(&self) {
        for (_, _, out) in self.inner.queue.lock().unwrap().iter_mut() {
            *out = false;
        }
        self.inner.queued.notify_waiters();
    }

    pub fn acked(&self) -> Vec<String> {
        self.inner.acked.lock().unwrap().clone()
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// `user` (users/N) added the app: Chat created their DM space.
    pub fn add_app(&self, user: &str) -> String {
        let space = format!("spaces/dm{}", user.trim_start_matches("users/"));
        self.inner.dms.lock().unwrap().insert(user.to_string(), space.clone());
        space
    }

    pub fn messages(&self) -> Vec<Value> {
        self.inner.messages.lock().unwrap().clone()
    }

    pub fn patches(&self) -> Vec<(String, Value)> {
        self.inner.patches.lock().unwrap().clone()
    }

    pub fn token_calls(&self) -> u32 {
        self.inner.token_calls.load(Ordering::SeqCst)
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().unwrap().clone()
    }

    /// The bearer token Chat puts on an event (project-number audience), minted `how`.
    pub fn bearer(&self, how: Mint) -> Option<String> {
        let now = now_secs();
        let mut claims = json!({"iss": CHAT_ISSUER, "aud": PROJECT, "iat": now, "exp": now + 3600});
        let (mut pem, mut kid) = (CHAT_KEY, "chat-key-1");
        match how {
            Mint::Valid => {}
            Mint::Expired => claims["exp"] = json!(now - 600),
            Mint::WrongAudience => claims["aud"] = json!("999999999999"),
            Mint::WrongIssuer => claims["iss"] = json!(SA_EMAIL),
            Mint::UnknownKey => (pem, kid) = (ATTACKER_KEY, "attacker"),
            Mint::Unsigned => return None,
        }
        Some(SigningKey::from_pem(pem).unwrap().sign(Some(kid), &claims).unwrap())
    }

    /// `user` pressed the button carrying `token` on `message` (a created message).
    pub fn press(&self, user: &str, message: &Value, token: &str) -> Value {
        json!({"type": "CARD_CLICKED", "eventTime": "2026-12-07T08:00:00.000Z",
               "message": {"name": message["name"]},
               "space": {"name": message["space"]["name"], "type": "DM", "spaceType": "DIRECT_MESSAGE"},
               "user": {"name": user, "displayName": "Someone", "type": "HUMAN", "domainId": "d1"},
               "action": {"actionMethodName": "airlock", "parameters": [{"key": "token", "value": token}]},
               "common": {"hostApp": "CHAT", "invokedFunction": "airlock", "parameters": {"token": token}}})
    }

    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&Fake) -> bool) {
        let wait = async {
            while !done(self) {
                if self.events.recv().await.is_none() {
                    panic!("fake gchat: event stream ended");
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("fake gchat: timed out waiting for {what}"));
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every text paragraph: HTML only of ours (`<b>`, `<br>`), everything else entities; no
/// hidden characters; the notification text fixed.
pub fn assert_inert(m: &Value) {
    assert_eq!(m["text"], "airlock: an agent's request needs approval");
    for t in paragraphs(m) {
        let stripped = t.replace("<b>", "").replace("</b>", "").replace("<br>", "");
        assert!(!stripped.contains('<') && !stripped.contains('>'), "raw markup in {t}");
        assert!(!stripped.contains('"'), "raw quote in {t}");
        assert!(!t.chars().any(is_deceptive), "hidden character in {t:?}");
    }
}

pub fn paragraphs(m: &Value) -> Vec<String> {
    m["cardsV2"][0]["card"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["widgets"].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w["textParagraph"]["text"].as_str().map(str::to_string))
        .collect()
}

/// What the approver reads: paragraphs with entities decoded.
pub fn shown(m: &Value) -> String {
    paragraphs(m)
        .join("\n")
        .replace("<br>", "\n")
        .replace("<b>", "")
        .replace("</b>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// (text, token) of each button.
pub fn buttons(m: &Value) -> Vec<(String, String)> {
    m["cardsV2"][0]["card"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["widgets"].as_array().cloned().unwrap_or_default())
        .flat_map(|w| w["buttonList"]["buttons"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            let p = &b["onClick"]["action"]["parameters"][0];
            (
                b["text"].as_str().unwrap_or("").into(),
                p["value"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}
