//! A local fake of the parts of Slack the channel uses, enforcing the documented wire
//! format: Web API methods (bearer token per method, JSON bodies, required fields, Block Kit
//! limits), interaction `response_url`s, and a Socket Mode WebSocket (hello, envelopes, acks,
//! disconnect). Everything received is recorded; tests await [`Event`]s instead of sleeping.
#![allow(dead_code)]

pub mod cards;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub const BOT: &str = "xoxb-1111-2222-FAKEbotTOKENvalue";
pub const APP: &str = "xapp-1-A0FAKE-3333-FAKEappTOKENvalue";
pub const DM: &str = "D0FAKEDM1";
pub const TS: &str = "1700000000.000100";

/// Things tests wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A Web API call arrived (whatever its outcome).
    Api(String),
    /// A response_url POST arrived.
    Hook,
    /// Socket connection number n completed its handshake and got `hello`.
    Connected(u32),
    /// An ack for this envelope id arrived.
    Ack(String),
    /// Socket connection number n ended.
    Closed(u32),
}

enum Cmd {
    Send(String),
    /// Drop the TCP connection without a close frame.
    Kill,
}

struct Inner {
    calls: Mutex<Vec<(String, Value)>>,
    hooks: Mutex<Vec<Value>>,
    acks: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
    events: mpsc::UnboundedSender<Event>,
    socket: Mutex<Option<(u32, mpsc::UnboundedSender<Cmd>)>>,
    connections: AtomicU32,
    tickets: AtomicU32,
    rate_limit_next: AtomicBool,
    ws_addr: SocketAddr,
}

impl Inner {
    fn violation(&self, v: String) {
        eprintln!("fake slack: VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }

    fn event(&self, e: Event) {
        let _ = self.events.send(e);
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    events: mpsc::UnboundedReceiver<Event>,
}

fn slack_error(error: &str) -> Response {
    axum::Json(json!({"ok": false, "error": error})).into_response()
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn check_text_object(t: &Value, max: usize, plain_only: bool, at: &str, errs: &mut Vec<String>) {
    let kind = t["type"].as_str().unwrap_or("");
    let ok_kind = if plain_only {
        kind == "plain_text"
    } else {
        kind == "plain_text" || kind == "mrkdwn"
    };
    if !ok_kind {
        errs.push(format!("{at}: text object type {kind:?}"));
    }
    let n = chars(&t["text"]);
    if !t["text"].is_string() || n == 0 || n > max {
        errs.push(format!("{at}: text length {n} (max {max})"));
    }
}

/// Block Kit and message limits as documented (chat.postMessage, blocks, elements).
pub fn validate_message(body: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(t) = body.get("text")
        && (!t.is_string() || chars(t) > 40_000)
    {
        errs.push(format!("text: {} characters (max 40000)", chars(t)));
    }
    let Some(blocks) = body["blocks"].as_array() else {
        errs.push("blocks: not an array".into());
        return errs;
    };
    if blocks.is_empty() || blocks.len() > 50 {
        errs.push(format!("blocks: {} (1..=50)", blocks.len()));
    }
    let mut block_ids = HashSet::new();
    let mut action_ids = HashSet::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("blocks[{i}]");
        if let Some(id) = b.get("block_id")
            && (chars(id) == 0 || chars(id) > 255 || !block_ids.insert(id.to_string()))
        {
            errs.push(format!("{at}: block_id {id} empty, too long or repeated"));
        }
        match b["type"].as_str().unwrap_or("") {
            "header" => check_text_object(&b["text"], 150, true, &at, &mut errs),
            "divider" => {}
            "section" => {
                if let Some(t) = b.get("text") {
                    check_text_object(t, 3000, false, &at, &mut errs);
                }
                if let Some(f) = b.get("fields") {
                    let f = f.as_array().cloned().unwrap_or_default();
                    if f.is_empty() || f.len() > 10 {
                        errs.push(format!("{at}: {} fields (1..=10)", f.len()));
                    }
                    for (j, t) in f.iter().enumerate() {
                        check_text_object(t, 2000, false, &format!("{at}.fields[{j}]"), &mut errs);
                    }
                }
                if b.get("text").is_none() && b.get("fields").is_none() {
                    errs.push(format!("{at}: section without text or fields"));
                }
            }
            "context" => {
                let els = b["elements"].as_array().cloned().unwrap_or_default();
                if els.is_empty() || els.len() > 10 {
                    errs.push(format!("{at}: {} context elements (1..=10)", els.len()));
                }
                for (j, t) in els.iter().enumerate() {
                    check_text_object(t, 3000, false, &format!("{at}.elements[{j}]"), &mut errs);
                }
            }
            "actions" => {
                let els = b["elements"].as_array().cloned().unwrap_or_default();
                if els.is_empty() || els.len() > 25 {
                    errs.push(format!("{at}: {} action elements (1..=25)", els.len()));
                }
                for (j, e) in els.iter().enumerate() {
                    let at = format!("{at}.elements[{j}]");
                    if e["type"] != "button" {
                        errs.push(format!("{at}: not a button"));
                    }
                    check_text_object(&e["text"], 75, true, &at, &mut errs);
                    let id = &e["action_id"];
                    if chars(id) == 0 || chars(id) > 255 || !action_ids.insert(id.to_string()) {
                        errs.push(format!("{at}: action_id {id} empty, too long or repeated"));
                    }
                    if e.get("value").is_some_and(|v| !v.is_string() || chars(v) > 2000) {
                        errs.push(format!("{at}: value over 2000 characters"));
                    }
                    if let Some(s) = e.get("style")
                        && s != "primary"
                        && s != "danger"
                    {
                        errs.push(format!("{at}: style {s}"));
                    }
                }
            }
            other => errs.push(format!("{at}: unknown block type {other:?}")),
        }
    }
    errs
}

fn required_str(body: &Value, field: &str) -> Option<String> {
    body[field].as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

async fn api(State(st): State<Arc<Inner>>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = api_answer(&st, method.clone(), &headers, body);
    // After the call is recorded, so a test woken by the event sees it in `calls`.
    st.event(Event::Api(method));
    answer
}

fn api_answer(st: &Inner, method: String, headers: &HeaderMap, body: Bytes) -> Response {
    if st.rate_limit_next.swap(false, Ordering::SeqCst) {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, "7".parse().unwrap());
        return r;
    }
    // apps.connections.open takes the app-level token; everything else the bot token.
    let token = if method == "apps.connections.open" { APP } else { BOT };
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {token}")) {
        return slack_error("invalid_auth");
    }
    if method == "apps.connections.open" {
        st.calls.lock().unwrap().push((method, Value::Null));
        let n = st.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        return axum::Json(
            json!({"ok": true, "url": format!("ws://{}/link/?ticket=fake-{n}&app_id=A0FAKE", st.ws_addr)}),
        )
        .into_response();
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        st.violation(format!("{method}: content type {ct:?}"));
        return slack_error("invalid_form_data");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        st.violation(format!("{method}: body is not JSON"));
        return slack_error("invalid_json");
    };
    st.calls.lock().unwrap().push((method.clone(), body.clone()));
    let missing = |fields: &[&str]| {
        fields
            .iter()
            .find(|f| required_str(&body, f).is_none())
            .map(|f| f.to_string())
    };
    let answer = match method.as_str() {
        "conversations.open" => match missing(&["users"]) {
            None => json!({"ok": true, "channel": {"id": DM}}),
            Some(_) => json!({"ok": false, "error": "users_list_not_supplied"}),
        },
        "chat.postMessage" | "chat.update" => {
            let need: &[&str] = if method == "chat.update" {
                &["channel", "ts"]
            } else {
                &["channel"]
            };
            if missing(need).is_some() {
                json!({"ok": false, "error": "channel_not_found"})
            } else if body.get("text").is_none() && body.get("blocks").is_none() {
                json!({"ok": false, "error": "no_text"})
            } else {
                let errs = validate_message(&body);
                if errs.is_empty() {
                    let ts = body["ts"].as_str().unwrap_or(TS);
                    json!({"ok": true, "channel": body["channel"], "ts": ts, "message": {"text": body["text"]}})
                } else {
                    for e in &errs {
                        st.violation(format!("{method}: {e}"));
                    }
                    json!({"ok": false, "error": "invalid_blocks", "errors": errs})
                }
            }
        }
        "chat.postEphemeral" => match missing(&["channel", "user", "text"]) {
            None if chars(&body["text"]) <= 40_000 => json!({"ok": true, "message_ts": "1700000001.000200"}),
            _ => json!({"ok": false, "error": "invalid_arguments"}),
        },
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(answer).into_response()
}

async fn hook(State(st): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    // Response URLs need no token; one in the request would be a leak.
    if headers.contains_key(header::AUTHORIZATION) {
        st.violation("response_url: request carries an Authorization header".into());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if ct.starts_with("application/json") && v["text"].is_string() => {
            st.hooks.lock().unwrap().push(v);
            st.event(Event::Hook);
            axum::Json(json!({"ok": true})).into_response()
        }
        _ => {
            st.violation(format!("response_url: bad request (content type {ct:?})"));
            (StatusCode::BAD_REQUEST, "invalid_payload").into_response()
        }
    }
}

#[allow(clippy::result_large_err)] // the handshake callback type is tungstenite's
async fn socket_conn(st: Arc<Inner>, stream: tokio::net::TcpStream) {
    let check = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                 resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
        let q = req.uri().query().unwrap_or("");
        if req.uri().path() == "/link/" && q.contains("ticket=fake-") {
            Ok(resp)
        } else {
            let mut r = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(None);
            *r.status_mut() = StatusCode::NOT_FOUND;
            Err(r)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        st.violation("socket: handshake without a ticket URL".into());
        return;
    };
    let n = st.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let (tx, mut rx) = mpsc::unbounded_channel();
    *st.socket.lock().unwrap() = Some((n, tx));
    let hello = json!({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake", "approximate_connection_time": 18060}, "connection_info": {"app_id": "A0FAKE"}});
    if ws.send(Message::text(hello.to_string())).await.is_ok() {
        st.event(Event::Connected(n));
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(s)) => if ws.send(Message::text(s)).await.is_err() { break },
                    Some(Cmd::Kill) | None => break,
                },
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        let keys: Vec<&String> = v.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                        match v["envelope_id"].as_str() {
                            Some(id) if keys.iter().all(|k| *k == "envelope_id" || *k == "payload") => {
                                st.acks.lock().unwrap().push(id.to_string());
                                st.event(Event::Ack(id.to_string()));
                            }
                            _ => st.violation(format!("socket: unexpected frame from the app: {t}")),
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    {
        let mut cur = st.socket.lock().unwrap();
        if cur.as_ref().is_some_and(|(m, _)| *m == n) {
            *cur = None;
        }
    }
    st.event(Event::Closed(n));
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events_tx, events) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            calls: Mutex::default(),
            hooks: Mutex::default(),
            acks: Mutex::default(),
            violations: Mutex::default(),
            events: events_tx,
            socket: Mutex::default(),
            connections: AtomicU32::new(0),
            tickets: AtomicU32::new(0),
            rate_limit_next: AtomicBool::new(false),
            ws_addr: ws_listener.local_addr().unwrap(),
        });
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/hooks/{*rest}", post(hook))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let st = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = ws_listener.accept().await {
                tokio::spawn(socket_conn(st.clone(), stream));
            }
        });
        Fake { addr, inner, events }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn hook_url(&self) -> String {
        format!("http://{}/hooks/actions/T0FAKE/1234/secretpart", self.addr)
    }

    /// Bodies of the successful-auth calls to `method`, in order.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        let calls = self.inner.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn hooks(&self) -> Vec<Value> {
        self.inner.hooks.lock().unwrap().clone()
    }

    pub fn acks(&self) -> Vec<String> {
        self.inner.acks.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().unwrap().clone()
    }

    pub fn rate_limit_next(&self) {
        self.inner.rate_limit_next.store(true, Ordering::SeqCst);
    }

    fn current(&self) -> mpsc::UnboundedSender<Cmd> {
        let cur = self.inner.socket.lock().unwrap();
        cur.as_ref()
            .map(|(_, tx)| tx.clone())
            .expect("an app connected over Socket Mode")
    }

    /// Sends a frame to the connected app.
    pub fn push(&self, frame: Value) {
        self.current().send(Cmd::Send(frame.to_string())).unwrap();
    }

    /// Drops the current socket without a close frame (a network failure).
    pub fn kill_socket(&self) {
        self.current().send(Cmd::Kill).unwrap();
    }

    /// Waits (bounded) for the next event equal to `want`, skipping others.
    pub async fn wait_for(&mut self, want: Event) {
        let wait = async {
            while let Some(e) = self.events.recv().await {
                if e == want {
                    return;
                }
            }
            panic!("fake slack: event stream ended");
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("fake slack: timed out waiting for {want:?}"));
    }

    /// Waits (bounded) until `done` holds for what the fake recorded, re-checking after
    /// every event, so the order events arrive in does not matter.
    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&Fake) -> bool) {
        let wait = async {
            while !done(self) {
                if self.events.recv().await.is_none() {
                    panic!("fake slack: event stream ended");
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("fake slack: timed out waiting for {what}"));
    }
}

/// Every text object's text in a block tree, with its type.
pub fn texts(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(o) => {
                if let (Some(Value::String(k)), Some(Value::String(t))) = (o.get("type"), o.get("text"))
                    && (k == "plain_text" || k == "mrkdwn")
                {
                    out.push((k.clone(), t.clone()));
                }
                o.values().for_each(|c| walk(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// Every object of `kind` anywhere in a block tree.
pub fn objects_of(v: &Value, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    fn walk(v: &Value, kind: &str, out: &mut Vec<Value>) {
        match v {
            Value::Object(o) => {
                if o.get("type").and_then(Value::as_str) == Some(kind) {
                    out.push(v.clone());
                }
                o.values().for_each(|c| walk(c, kind, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, kind, out)),
            _ => {}
        }
    }
    walk(v, kind, &mut out);
    out
}
