//! A local fake of the parts of Discord the channel uses, enforcing the documented wire
//! format: REST (`Authorization: Bot …` on bot routes, JSON bodies, message, embed and
//! component limits, rate-limit headers and 429s), interaction callbacks inside the 3-second
//! window and only once, follow-ups only after the interaction was answered, and a Gateway
//! WebSocket (Hello, Identify, Ready, heartbeats and their acks, Resume with replay, Reconnect).
//! Everything received is recorded; tests await [`Event`]s instead of sleeping.
#![allow(dead_code)]

pub mod cards;
mod gateway;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const BOT: &str = "MTAwMDAwMDAwMDAwMDAwMDAx.GfAkEx.fake-discord-bot-token-value";
pub const APP_ID: &str = "1000000000000000001";
pub const DM_BASE: u64 = 1_200_000_000_000_000_000;
pub const MSG_BASE: u64 = 1_300_000_000_000_000_000;
/// Discord's answer window for an interaction.
pub const WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A REST call arrived (whatever its outcome) / was accepted and recorded.
    Api(String),
    Done(String),
    /// Gateway connection n got Ready (identify) or Resumed.
    Ready(u32),
    Resumed(u32),
    Heartbeat(u32),
    /// Connection n asked to resume a session it cannot (op 9, `d: false`).
    InvalidSession(u32),
    /// The client closed connection n, with this close code.
    ClientClosed(u32, Option<u16>),
    Closed(u32),
    /// The interaction with this id was answered (callback) / followed up.
    Answered(String),
    FollowedUp(String),
}

enum Cmd {
    Send(String),
    Close(u16),
    Kill,
}

#[derive(Debug, Clone)]
pub struct Interaction {
    pub id: String,
    pub token: String,
    pub created: Instant,
    pub answer: Option<Value>,
    pub followups: Vec<Value>,
    /// Dispatched again on a Resume: the reader cannot know whether it was answered.
    pub replayed: bool,
}

#[derive(Default)]
struct Session {
    id: String,
    seq: u64,
    /// (seq, payload) of every dispatch, for Resume.
    log: Vec<(u64, String)>,
}

struct Inner {
    calls: Mutex<Vec<(String, Value)>>,
    violations: Mutex<Vec<String>>,
    events: mpsc::UnboundedSender<Event>,
    messages: Mutex<HashMap<String, Value>>,
    interactions: Mutex<HashMap<String, Interaction>>,
    ids: AtomicU64,
    socket: Mutex<Option<(u32, mpsc::UnboundedSender<Cmd>)>>,
    session: Mutex<Session>,
    connections: AtomicU32,
    heartbeat_ms: AtomicU64,
    ack_heartbeats: AtomicBool,
    rate_limit_next: AtomicU32,
    exhaust_buckets: AtomicBool,
    buckets: Mutex<HashMap<String, Instant>>,
    ws_addr: SocketAddr,
    /// Hello is sent only while this is true.
    hello: tokio::sync::watch::Sender<bool>,
}

impl Inner {
    fn violation(&self, v: String) {
        eprintln!("fake discord: VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }
    fn event(&self, e: Event) {
        let _ = self.events.send(e);
    }
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::SeqCst)
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    events: mpsc::UnboundedReceiver<Event>,
}

fn error(status: StatusCode, code: u64, message: &str) -> Response {
    (status, axum::Json(json!({"code": code, "message": message}))).into_response()
}

fn len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.encode_utf16().count())
}

/// Message create/edit limits ("Create Message", "Embed Limits", "Component Reference").
pub fn validate_message(b: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(c) = b.get("content")
        && (!c.is_string() || len(c) > 2000)
    {
        errs.push(format!("content: {} (max 2000)", len(c)));
    }
    let embeds = b["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        errs.push("more than 10 embeds".into());
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let mut checks: Vec<(String, &Value, usize, bool)> = vec![
            ("title".into(), &e["title"], 256, false),
            ("description".into(), &e["description"], 4096, false),
            ("footer.text".into(), &e["footer"]["text"], 2048, false),
        ];
        let fields = e["fields"].as_array().map(Vec::as_slice).unwrap_or_default();
        if fields.len() > 25 {
            errs.push(format!("embeds[{i}].fields: {} (max 25)", fields.len()));
        }
        for (j, f) in fields.iter().enumerate() {
            checks.push((format!("fields[{j}].name"), &f["name"], 256, true));
            checks.push((format!("fields[{j}].value"), &f["value"], 1024, true));
        }
        for (what, v, max, required) in checks {
            if v.is_null() && !required {
                continue;
            }
            let n = len(v);
            total += n;
            if !v.is_string() || n > max || (required && n == 0) {
                errs.push(format!("embeds[{i}].{what}: {n} (max {max})"));
            }
        }
        if e.get("color").is_some_and(|c| c.as_u64().is_none_or(|c| c > 0xFFFFFF)) {
            errs.push(format!("embeds[{i}].color"));
        }
    }
    if total > 6000 {
        errs.push(format!("embeds: {total} characters in all (max 6000)"));
    }
    let rows = b["components"].as_array().cloned().unwrap_or_default();
    if rows.len() > 5 {
        errs.push("more than 5 action rows".into());
    }
    let mut ids = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let comps = row["components"].as_array().cloned().unwrap_or_default();
        if row["type"] != 1 || comps.is_empty() || comps.len() > 5 {
            errs.push(format!("components[{r}]: an action row holds 1 to 5 components"));
        }
        for c in comps {
            let style = c["style"].as_u64().unwrap_or(0);
            if c["type"] != 2 || !(1..=5).contains(&style) {
                errs.push(format!("components[{r}]: not a button: {c}"));
            }
            if len(&c["label"]) > 80 {
                errs.push("button label over 80".into());
            }
            if style == 5 {
                if c.get("custom_id").is_some() || c["url"].as_str().is_none() {
                    errs.push("a link button has a url and no custom_id".into());
                }
            } else {
                let n = len(&c["custom_id"]);
                if !(1..=100).contains(&n) {
                    errs.push(format!("custom_id: {n} characters (1..=100)"));
                }
                ids.push(c["custom_id"].as_str().unwrap_or("").to_string());
            }
        }
    }
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    if uniq.len() != ids.len() {
        errs.push("custom_id not unique in the message".into());
    }
    errs
}

/// Applies auth, content type, rate limits; `None` to go on, `Some(response)` to stop.
fn gate(st: &Inner, method: &Method, route: &str, h: &HeaderMap, bot: bool) -> Option<Response> {
    st.event(Event::Api(route.to_string()));
    if bot && h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(&format!("Bot {BOT}")) {
        st.violation(format!("{route}: Authorization is not `Bot <token>`"));
        return Some(error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized"));
    }
    if *method != Method::GET
        && !h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    {
        st.violation(format!("{route}: content-type is not application/json"));
        return Some(error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        ));
    }
    let key = format!("{method} {route}");
    if let Some(until) = st.buckets.lock().unwrap().get(&key)
        && Instant::now() < *until
    {
        st.violation(format!("{key}: sent while its bucket was exhausted"));
    }
    if st
        .rate_limit_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, 0, "You are being rate limited.");
        let body = json!({"message": "You are being rate limited.", "retry_after": 0.05, "global": false});
        *r.body_mut() = axum::body::Body::from(body.to_string());
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        r.headers_mut().insert("x-ratelimit-scope", "user".parse().unwrap());
        return Some(r);
    }
    None
}

fn ok(st: &Inner, method: &Method, route: &str, v: Value) -> Response {
    // Sent once the call is recorded, so waiting on it never misses what the call changed.
    st.event(Event::Done(route.to_string()));
    let mut r = axum::Json(v).into_response();
    let h = r.headers_mut();
    h.insert("x-ratelimit-limit", "5".parse().unwrap());
    h.insert("x-ratelimit-bucket", "fakebucket".parse().unwrap());
    if st.exhaust_buckets.load(Ordering::SeqCst) {
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-after", "0.2".parse().unwrap());
        st.buckets
            .lock()
            .unwrap()
            .insert(format!("{method} {route}"), Instant::now() + Duration::from_millis(190));
    } else {
        h.insert("x-ratelimit-remaining", "4".parse().unwrap());
        h.insert("x-ratelimit-reset-after", "1.0".parse().unwrap());
    }
    r
}

fn json_body(st: &Inner, route: &str, body: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Some(v),
        _ => {
            st.violation(format!("{route}: body is not a JSON object"));
            None
        }
    }
}

async fn create_dm(State(st): State<Arc<Inner>>, h: HeaderMap, body: Bytes) -> Response {
    let route = "/users/@me/channels";
    if let Some(r) = gate(&st, &Method::POST, route, &h, true) {
        return r;
    }
    let Some(v) = json_body(&st, route, &body) else {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    let Some(to) = v["recipient_id"]
        .as_str()
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
    else {
        st.violation(format!("{route}: recipient_id is not a snowflake string: {v}"));
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    st.calls.lock().unwrap().push((route.into(), v.clone()));
    let dm = DM_BASE + to.len() as u64 * 1000 + to.bytes().map(u64::from).sum::<u64>();
    ok(
        &st,
        &Method::POST,
        route,
        json!({"id": dm.to_string(), "type": 1, "recipients": [{"id": to}]}),
    )
}

async fn create_message(
    State(st): State<Arc<Inner>>,
    Path(channel): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/channels/{channel}/messages");
    if let Some(r) = gate(&st, &Method::POST, &route, &h, true) {
        return r;
    }
    let Some(v) = json_body(&st, &route, &body) else {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    let errs = validate_message(&v);
    if !errs.is_empty() {
        for e in &errs {
            st.violation(format!("{route}: {e}"));
        }
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    st.calls.lock().unwrap().push(("create message".into(), v.clone()));
    let id = (MSG_BASE + st.next_id()).to_string();
    st.messages.lock().unwrap().insert(format!("{channel}/{id}"), v);
    ok(&st, &Method::POST, &route, json!({"id": id, "channel_id": channel}))
}

async fn edit_message(
    State(st): State<Arc<Inner>>,
    Path((channel, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/channels/{channel}/messages/{id}");
    if let Some(r) = gate(&st, &Method::PATCH, &route, &h, true) {
        return r;
    }
    let Some(v) = json_body(&st, &route, &body) else {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    let errs = validate_message(&v);
    for e in &errs {
        st.violation(format!("{route}: {e}"));
    }
    let key = format!("{channel}/{id}");
    let mut msgs = st.messages.lock().unwrap();
    if !msgs.contains_key(&key) {
        st.violation(format!("{route}: no such message"));
        return error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    }
    if !errs.is_empty() {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    msgs.insert(key, v.clone());
    drop(msgs);
    st.calls.lock().unwrap().push(("edit message".into(), v));
    ok(&st, &Method::PATCH, &route, json!({"id": id, "channel_id": channel}))
}

async fn gateway_bot(State(st): State<Arc<Inner>>, h: HeaderMap) -> Response {
    let route = "/gateway/bot";
    if let Some(r) = gate(&st, &Method::GET, route, &h, true) {
        return r;
    }
    st.calls.lock().unwrap().push((route.into(), Value::Null));
    let url = format!("ws://{}", st.ws_addr);
    ok(
        &st,
        &Method::GET,
        route,
        json!({"url": url, "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}}),
    )
}

async fn callback(
    State(st): State<Arc<Inner>>,
    Path((id, token)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "/interactions/{id}/{token}/callback";
    if let Some(r) = gate(&st, &Method::POST, route, &h, false) {
        return r;
    }
    let Some(v) = json_body(&st, route, &body) else {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    if !matches!(v["type"].as_u64(), Some(4..=7)) {
        st.violation(format!("callback: type {} is not an answer to a component", v["type"]));
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    let mut all = st.interactions.lock().unwrap();
    let Some(i) = all.get_mut(&id).filter(|i| i.token == token) else {
        st.violation("callback: unknown interaction or token".into());
        return error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    };
    if i.answer.is_some() {
        if !i.replayed {
            st.violation(format!("callback: interaction {id} answered twice"));
        }
        return error(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        );
    }
    if i.created.elapsed() > WINDOW {
        return error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    }
    i.answer = Some(v);
    drop(all);
    st.event(Event::Answered(id));
    (StatusCode::NO_CONTENT, "").into_response()
}

async fn followup(
    State(st): State<Arc<Inner>>,
    Path((app, token)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "/webhooks/{app}/{token}";
    if let Some(r) = gate(&st, &Method::POST, route, &h, false) {
        return r;
    }
    let Some(v) = json_body(&st, route, &body) else {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    if app != APP_ID {
        st.violation(format!("follow-up for application {app}"));
        return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    }
    for e in validate_message(&v) {
        st.violation(format!("follow-up: {e}"));
    }
    let mut all = st.interactions.lock().unwrap();
    let Some(i) = all.values_mut().find(|i| i.token == token) else {
        return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    };
    if i.answer.is_none() {
        // A follow-up needs the interaction acknowledged first.
        st.violation("follow-up before the interaction was answered".into());
        return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    }
    i.followups.push(v);
    let id = i.id.clone();
    drop(all);
    st.event(Event::FollowedUp(id));
    axum::Json(json!({"id": "1400000000000000001"})).into_response()
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events_tx, events) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            calls: Mutex::default(),
            violations: Mutex::default(),
            events: events_tx,
            messages: Mutex::default(),
            interactions: Mutex::default(),
            ids: AtomicU64::new(1),
            socket: Mutex::default(),
            session: Mutex::default(),
            connections: AtomicU32::new(0),
            heartbeat_ms: AtomicU64::new(41_250),
            ack_heartbeats: AtomicBool::new(true),
            rate_limit_next: AtomicU32::new(0),
            exhaust_buckets: AtomicBool::new(false),
            buckets: Mutex::default(),
            ws_addr: ws_listener.local_addr().unwrap(),
            hello: tokio::sync::watch::channel(true).0,
        });
        let app = Router::new()
            .route("/api/v10/users/@me/channels", post(create_dm))
            .route("/api/v10/channels/{channel}/messages", post(create_message))
            .route("/api/v10/channels/{channel}/messages/{id}", patch(edit_message))
            .route("/api/v10/gateway/bot", get(gateway_bot))
            .route("/api/v10/interactions/{id}/{token}/callback", post(callback))
            .route("/api/v10/webhooks/{app}/{token}", post(followup))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let st = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = ws_listener.accept().await {
                tokio::spawn(gateway::conn(st.clone(), stream));
            }
        });
        Fake { addr, inner, events }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// Bodies of accepted calls named `what` ("create message", "edit message", a route).
    pub fn calls(&self, what: &str) -> Vec<Value> {
        let calls = self.inner.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(m, _)| m == what)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().unwrap().clone()
    }

    /// The message as it stands now (after edits).
    pub fn message(&self, r: &str) -> Option<Value> {
        self.inner.messages.lock().unwrap().get(r).cloned()
    }

    /// "channel/message" of every message created, oldest first.
    pub fn message_refs(&self) -> Vec<String> {
        let mut refs: Vec<String> = self.inner.messages.lock().unwrap().keys().cloned().collect();
        refs.sort_by_key(|r| r.split_once('/').map(|(_, m)| m.parse::<u64>().unwrap_or(0)));
        refs
    }

    pub fn interaction(&self, id: &str) -> Option<Interaction> {
        self.inner.interactions.lock().unwrap().get(id).cloned()
    }

    pub fn connections(&self) -> u32 {
        self.inner.connections.load(Ordering::SeqCst)
    }

    pub fn rate_limit_next(&self, n: u32) {
        self.inner.rate_limit_next.store(n, Ordering::SeqCst);
    }

    pub fn exhaust_buckets(&self, on: bool) {
        self.inner.exhaust_buckets.store(on, Ordering::SeqCst);
    }

    /// The DM channel id the fake gives `user`.
    pub fn dm_of(user: &str) -> String {
        (DM_BASE + user.len() as u64 * 1000 + user.bytes().map(u64::from).sum::<u64>()).to_string()
    }

    /// Registers a button press by `user` on `message` ("channel/message") with `custom_id`,
    /// `age` ago, and returns it as Discord sends it (in a DM: `user`; in a guild: `member`).
    pub fn new_press(&self, user: &str, custom_id: &str, message: &str, age: Duration) -> Value {
        let n = self.inner.next_id();
        let id = (1_100_000_000_000_000_000u64 + n).to_string();
        let token = format!("aW50ZXJhY3Rpb246{n}.fake-interaction-token");
        let (channel, msg) = message.split_once('/').unwrap_or(("1", "1"));
        self.inner.interactions.lock().unwrap().insert(
            id.clone(),
            Interaction {
                id: id.clone(),
                token: token.clone(),
                created: Instant::now() - age,
                answer: None,
                followups: vec![],
                replayed: false,
            },
        );
        json!({
            "type": 3, "id": id, "application_id": APP_ID, "token": token, "version": 1,
            "channel_id": channel, "user": {"id": user, "username": "someone"},
            "data": {"custom_id": custom_id, "component_type": 2},
            "message": {"id": msg, "channel_id": channel},
            "app_permissions": "0", "locale": "en-US",
        })
    }

    pub async fn wait_for(&mut self, want: Event) {
        let wait = async {
            while let Some(e) = self.events.recv().await {
                if e == want {
                    return;
                }
            }
            panic!("fake discord: event stream ended");
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("fake discord: timed out waiting for {want:?}"));
    }

    /// [`Fake::wait_until`] that says whether `done` came true in time instead of panicking.
    pub async fn try_wait_until(&mut self, done: impl Fn(&Fake) -> bool) -> bool {
        let wait = async {
            while !done(self) {
                if self.events.recv().await.is_none() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or(false)
    }

    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&Fake) -> bool) {
        let wait = async {
            while !done(self) {
                if self.events.recv().await.is_none() {
                    panic!("fake discord: event stream ended");
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("fake discord: timed out waiting for {what}"));
    }
}
