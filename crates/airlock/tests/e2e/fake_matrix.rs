//! A local Matrix homeserver speaking the parts of the client-server API (v3) a bot uses:
//! `Authorization: Bearer` on every call, `/account/whoami`, `/createRoom` (a private,
//! unencrypted direct room inviting one user), `PUT /rooms/{id}/send/{type}/{txnId}`
//! (idempotent per transaction id; `m.room.message` with `body`, and an HTML `formatted_body`
//! only in `org.matrix.custom.html` and only with tags of the spec's allow-list — this fake
//! allows ours alone, without attributes; `m.replace` edits of the sender's own events with
//! `m.new_content`; `m.reaction` annotations of an existing event), `PUT
//! /rooms/{id}/redact/{eventId}/{txnId}`, and `/sync` long polling with `since` /
//! `next_batch` and a `filter`. Other users' events (reactions, messages) are injected by the
//! test as the homeserver would relay them, with `sender` set by the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const TOKEN: &str = "syt_YWlybG9jaw_e2e_matrix_token_3c2b1a";
pub const BOT: &str = "@airlock:fake.test";

#[derive(Default)]
struct St {
    /// Every event, in order: (room, event).
    events: Mutex<Vec<(String, Value)>>,
    /// room → invited user.
    rooms: Mutex<HashMap<String, String>>,
    txns: Mutex<HashMap<(String, String), String>>,
    /// The `since` of every /sync call, in order.
    sinces: Mutex<Vec<Option<String>>>,
    violations: Mutex<Vec<String>>,
    changed: Notify,
}

type Answer = (StatusCode, Json<Value>);

impl St {
    fn refuse(&self, why: String) -> Answer {
        self.violations.lock().unwrap().push(why.clone());
        self.changed.notify_waiters();
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"errcode": "M_BAD_JSON", "error": why})),
        )
    }

    fn authed(&self, h: &HeaderMap) -> Result<(), Answer> {
        if h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}")) {
            Ok(())
        } else {
            self.violations
                .lock()
                .unwrap()
                .push("missing or wrong access token".into());
            Err((
                StatusCode::UNAUTHORIZED,
                Json(json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"})),
            ))
        }
    }

    fn push(&self, room: &str, sender: &str, kind: &str, content: Value, extra: Option<(&str, Value)>) -> String {
        let mut events = self.events.lock().unwrap();
        let id = format!("$ev{}", events.len());
        let mut ev = json!({"type": kind, "sender": sender, "event_id": id, "room_id": room,
            "origin_server_ts": 1_700_000_000_000u64 + events.len() as u64, "content": content});
        if let Some((k, v)) = extra {
            ev[k] = v;
        }
        events.push((room.to_string(), ev));
        drop(events);
        self.changed.notify_waiters();
        id
    }

    fn event(&self, room: &str, id: &str) -> Option<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(r, e)| r == room && e["event_id"] == id)
            .map(|(_, e)| e.clone())
    }
}

const TAGS: &[&str] = &["p", "b", "pre", "code", "br"];

/// The HTML of a `formatted_body`: only our tags, no attributes, entities only for & < > " '.
pub fn check_html(html: &str) -> Result<(), String> {
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix('&') {
            if !["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| tail.starts_with(e))
            {
                return Err(format!("bare & at {:?}", &tail[..tail.len().min(20)]));
            }
            rest = after;
            continue;
        }
        let end = tail.find('>').ok_or("an unclosed tag")?;
        let name = tail[1..end].trim_start_matches('/');
        if !TAGS.contains(&name) {
            return Err(format!("tag <{}> is not allowed", &tail[1..end]));
        }
        rest = &tail[end + 1..];
    }
    if rest.contains('>') {
        return Err("a bare >".into());
    }
    Ok(())
}

fn check_message(c: &Value) -> Result<(), String> {
    if !c["msgtype"].is_string() || !c["body"].is_string() {
        return Err("m.room.message needs msgtype and body".into());
    }
    if let Some(f) = c.get("formatted_body") {
        if c["format"] != "org.matrix.custom.html" {
            return Err("formatted_body without format org.matrix.custom.html".into());
        }
        check_html(f.as_str().ok_or("formatted_body is not a string")?)?;
    }
    Ok(())
}

async fn whoami(State(st): State<Arc<St>>, h: HeaderMap) -> Answer {
    if let Err(a) = st.authed(&h) {
        return a;
    }
    (StatusCode::OK, Json(json!({"user_id": BOT, "device_id": "AIRLOCK"})))
}

async fn create_room(State(st): State<Arc<St>>, h: HeaderMap, Json(b): Json<Value>) -> Answer {
    if let Err(a) = st.authed(&h) {
        return a;
    }
    let invite: Vec<String> = b["invite"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let encrypted = b["initial_state"]
        .as_array()
        .is_some_and(|s| s.iter().any(|e| e["type"] == "m.room.encryption"));
    if b["is_direct"] != true || invite.len() != 1 || !invite[0].starts_with('@') || encrypted {
        return st.refuse(format!("a direct room invites one user, unencrypted: {b}"));
    }
    if !matches!(b["preset"].as_str(), Some("private_chat" | "trusted_private_chat")) {
        return st.refuse("a direct room is private".into());
    }
    let room = {
        let mut rooms = st.rooms.lock().unwrap();
        let room = format!("!room{}:fake.test", rooms.len());
        rooms.insert(room.clone(), invite[0].clone());
        room
    };
    st.changed.notify_waiters();
    (StatusCode::OK, Json(json!({"room_id": room})))
}

async fn send(
    State(st): State<Arc<St>>,
    h: HeaderMap,
    Path((room, kind, txn)): Path<(String, String, String)>,
    Json(c): Json<Value>,
) -> Answer {
    if let Err(a) = st.authed(&h) {
        return a;
    }
    if !st.rooms.lock().unwrap().contains_key(&room) {
        return (StatusCode::FORBIDDEN, Json(json!({"errcode": "M_FORBIDDEN"})));
    }
    if let Some(id) = st.txns.lock().unwrap().get(&(room.clone(), txn.clone())) {
        return (StatusCode::OK, Json(json!({"event_id": id})));
    }
    if c.to_string().len() > 65_536 {
        return st.refuse("event over 64 KiB".into());
    }
    let checked = match kind.as_str() {
        "m.room.message" => check_message(&c).and_then(|()| {
            let rel = &c["m.relates_to"];
            if rel["rel_type"] == "m.replace" {
                let target = st.event(&room, rel["event_id"].as_str().unwrap_or_default());
                if target.is_none_or(|t| t["sender"] != BOT) {
                    return Err("m.replace of an event that is not the sender's own".into());
                }
                check_message(&c["m.new_content"])?;
            }
            if let Some(to) = rel["m.in_reply_to"]["event_id"].as_str()
                && st.event(&room, to).is_none()
            {
                return Err("a reply to an unknown event".into());
            }
            Ok(())
        }),
        "m.reaction" => {
            let rel = &c["m.relates_to"];
            if rel["rel_type"] != "m.annotation" || rel["key"].as_str().is_none_or(|k| k.is_empty()) {
                Err(format!("bad reaction {c}"))
            } else if st.event(&room, rel["event_id"].as_str().unwrap_or_default()).is_none() {
                Err("a reaction to an unknown event".into())
            } else {
                Ok(())
            }
        }
        other => Err(format!("unexpected event type {other}")),
    };
    if let Err(e) = checked {
        return st.refuse(e);
    }
    let id = st.push(&room, BOT, &kind, c, None);
    st.txns.lock().unwrap().insert((room, txn), id.clone());
    (StatusCode::OK, Json(json!({"event_id": id})))
}

async fn redact(
    State(st): State<Arc<St>>,
    h: HeaderMap,
    Path((room, event, _txn)): Path<(String, String, String)>,
) -> Answer {
    if let Err(a) = st.authed(&h) {
        return a;
    }
    if st.event(&room, &event).is_none_or(|e| e["sender"] != BOT) {
        return st.refuse(format!("redaction of {event}, not the bot's own"));
    }
    let id = st.push(
        &room,
        BOT,
        "m.room.redaction",
        json!({"redacts": event}),
        Some(("redacts", json!(event))),
    );
    (StatusCode::OK, Json(json!({"event_id": id})))
}

async fn sync(State(st): State<Arc<St>>, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Answer {
    if let Err(a) = st.authed(&h) {
        return a;
    }
    if q.get("filter")
        .is_none_or(|f| serde_json::from_str::<Value>(f).is_err())
    {
        return st.refuse("sync without an inline JSON filter".into());
    }
    let since = q.get("since").cloned();
    st.sinces.lock().unwrap().push(since.clone());
    st.changed.notify_waiters();
    let from: usize = match since
        .as_deref()
        .map(|s| s.strip_prefix('s').and_then(|n| n.parse().ok()))
    {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return st.refuse(format!("unknown since token {since:?}")),
    };
    let timeout = q.get("timeout").and_then(|t| t.parse().ok()).unwrap_or(0u64);
    let wait = async {
        loop {
            let notified = st.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if st.events.lock().unwrap().len() > from {
                return;
            }
            notified.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(timeout), wait).await;
    // Only what is new is copied: the log grows with every event a long run sends.
    let events = st.events.lock().unwrap();
    let mut join = serde_json::Map::new();
    for (room, ev) in events.iter().skip(from) {
        if ev["type"] != "m.reaction" && ev["type"] != "m.room.message" {
            continue;
        }
        let r = join
            .entry(room.clone())
            .or_insert_with(|| json!({"timeline": {"events": [], "limited": false}}));
        r["timeline"]["events"].as_array_mut().unwrap().push(ev.clone());
    }
    let next = format!("s{}", events.len());
    drop(events);
    (
        StatusCode::OK,
        Json(json!({"next_batch": next, "rooms": {"join": join}})),
    )
}

pub struct FakeMatrix {
    pub url: String,
    st: Arc<St>,
}

impl FakeMatrix {
    pub async fn start() -> FakeMatrix {
        let st = Arc::new(St::default());
        let app = axum::Router::new()
            .route("/_matrix/client/v3/account/whoami", get(whoami))
            .route("/_matrix/client/v3/createRoom", post(create_room))
            .route("/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}", put(send))
            .route("/_matrix/client/v3/rooms/{room}/redact/{event}/{txn}", put(redact))
            .route("/_matrix/client/v3/sync", get(sync))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeMatrix { url, st }
    }

    /// The direct room created for `user`.
    pub fn room_of(&self, user: &str) -> Option<String> {
        self.st
            .rooms
            .lock()
            .unwrap()
            .iter()
            .find(|(_, u)| *u == user)
            .map(|(r, _)| r.clone())
    }

    /// Every event of `room`, in order.
    pub fn events(&self, room: &str) -> Vec<Value> {
        self.st
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == room)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// How many events exist (the position a `since` token names).
    pub fn position(&self) -> usize {
        self.st.events.lock().unwrap().len()
    }

    /// `user` reacts to `event` with `key`, as the homeserver relays it.
    pub fn react(&self, user: &str, room: &str, event: &str, key: &str) -> String {
        let c = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event, "key": key}});
        self.st.push(room, user, "m.reaction", c, None)
    }

    /// `user` writes `body` in `room`.
    pub fn say(&self, user: &str, room: &str, body: &str) -> String {
        self.st.push(
            room,
            user,
            "m.room.message",
            json!({"msgtype": "m.text", "body": body}),
            None,
        )
    }

    pub fn sinces(&self) -> Vec<Option<String>> {
        self.st.sinces.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }

    /// Waits (bounded, no sleeping) until `pred` holds.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&FakeMatrix) -> bool) {
        super::wait_notified(&self.st.changed, what, || pred(self), || self.violations()).await;
    }

    /// The answers (notices) replying to `event`.
    pub fn answers_to(&self, room: &str, event: &str) -> Vec<String> {
        self.events(room)
            .iter()
            .filter(|e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event)
            .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}
