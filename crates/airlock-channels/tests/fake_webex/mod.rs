//! A local fake of the parts of Webex the channel uses, enforcing the documented wire format:
//! `Authorization: Bearer`, `POST /v1/messages` (one recipient, markdown ≤ 7439 bytes, one
//! Adaptive Card attachment of version ≤ 1.3), `GET /v1/attachment/actions/{id}`, and webhook
//! envelopes signed with `X-Spark-Signature` (HMAC-SHA1 of the body) as Webex sends them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_channels::text::is_deceptive;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const BOT: &str = "ZmFrZS13ZWJleC1ib3QtdG9rZW4tdmFsdWU_fake_webex_bot_token";
pub const SECRET: &str = "fake-webex-webhook-secret-8c1d";
/// Labels the card may show as TextBlocks: never agent text.
pub const LABELS: &[&str] = &[
    "Agent", "Rule", "Rules", "Request", "Query", "Headers", "Summary", "Body", "Status",
];

struct Inner {
    posts: Mutex<Vec<Value>>,
    actions: Mutex<HashMap<String, Value>>,
    violations: Mutex<Vec<String>>,
    events: mpsc::UnboundedSender<String>,
    n: Mutex<u64>,
}

impl Inner {
    fn violation(&self, v: String) {
        eprintln!("fake webex: VIOLATION: {v}");
        self.violations.lock().unwrap().push(v);
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    events: mpsc::UnboundedReceiver<String>,
}

fn authorized(st: &Inner, h: &HeaderMap) -> bool {
    let ok = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {BOT}"));
    if !ok {
        st.violation("a call without `Authorization: Bearer <bot token>`".into());
    }
    ok
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message, "trackingId": "FAKE_1"}))).into_response()
}

/// Adaptive Card checks: the schema version Webex renders, known element types, actions.
pub fn validate_card(c: &Value) -> Vec<String> {
    let mut errs = vec![];
    if c["type"] != "AdaptiveCard" || !matches!(c["version"].as_str(), Some("1.0" | "1.1" | "1.2" | "1.3")) {
        errs.push(format!("not an AdaptiveCard ≤ 1.3: {} {}", c["type"], c["version"]));
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
        if a["type"] != "Action.Submit" || !a["title"].is_string() || !a["data"].is_object() {
            errs.push(format!("action: {a}"));
        }
    }
    errs
}

async fn messages(State(st): State<Arc<Inner>>, h: HeaderMap, body: Bytes) -> Response {
    let _ = st.events.send("POST /messages".into());
    if !authorized(&st, &h) {
        return error(
            StatusCode::UNAUTHORIZED,
            "The request requires a valid access token set in the Authorization request header.",
        );
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        st.violation("messages: body is not JSON".into());
        return error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let targets = ["roomId", "toPersonId", "toPersonEmail"]
        .iter()
        .filter(|k| v.get(**k).is_some())
        .count();
    if targets != 1 {
        st.violation(format!("messages: {targets} recipients"));
        return error(
            StatusCode::BAD_REQUEST,
            "exactly one of roomId, toPersonId, toPersonEmail",
        );
    }
    let md = v["markdown"].as_str().or(v["text"].as_str()).unwrap_or("");
    if md.is_empty() || md.len() > 7439 {
        st.violation(format!("messages: markdown/text of {} bytes (1..=7439)", md.len()));
        return error(StatusCode::BAD_REQUEST, "text too long");
    }
    if let Some(att) = v.get("attachments") {
        let list = att.as_array().cloned().unwrap_or_default();
        if list.len() != 1 || list[0]["contentType"] != "application/vnd.microsoft.card.adaptive" {
            st.violation(format!("messages: attachments {att}"));
            return error(StatusCode::BAD_REQUEST, "one adaptive card attachment");
        }
        for e in validate_card(&list[0]["content"]) {
            st.violation(format!("card: {e}"));
        }
    }
    let n = {
        let mut n = st.n.lock().unwrap();
        *n += 1;
        *n
    };
    let room = match v["toPersonId"].as_str() {
        Some(p) => format!("Um9vbS9{}", p.len() * 7 + p.bytes().map(usize::from).sum::<usize>()),
        None => v["roomId"].as_str().unwrap_or("").to_string(),
    };
    let id = format!("TWVzc2FnZS9{n}");
    v["id"] = json!(id);
    v["roomId"] = json!(room);
    st.posts.lock().unwrap().push(v.clone());
    let _ = st.events.send(format!("posted {id}"));
    axum::Json(json!({"id": id, "roomId": room, "roomType": "direct", "created": "2026-01-01T00:00:00.000Z"}))
        .into_response()
}

async fn action(State(st): State<Arc<Inner>>, Path(id): Path<String>, h: HeaderMap) -> Response {
    let _ = st.events.send("GET /attachment/actions".into());
    if !authorized(&st, &h) {
        return error(StatusCode::UNAUTHORIZED, "The request requires a valid access token.");
    }
    match st.actions.lock().unwrap().get(&id) {
        Some(a) => axum::Json(a.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Could not find attachment action"),
    }
}

/// RFC 3339 UTC for seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = airlock_channels::render::utc_parts(secs * 1000);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.000Z")
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// X-Spark-Signature: hex HMAC-SHA1 of the body with the webhook secret.
pub fn sign(secret: &str, body: &str) -> String {
    let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            posts: Mutex::default(),
            actions: Mutex::default(),
            violations: Mutex::default(),
            events: tx,
            n: Mutex::new(0),
        });
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/attachment/actions/{id}", get(action))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { addr, inner, events }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn posts(&self) -> Vec<Value> {
        self.inner.posts.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().unwrap().clone()
    }

    /// `person` pressed a button carrying `token` on `message`, `age_secs` ago: registers the
    /// action and returns the webhook envelope Webex would POST (unsigned). The envelope's
    /// own personId is `claimed`, which the channel must not believe.
    pub fn press(&self, person: &str, token: &str, message: &Value, age_secs: u64, claimed: &str) -> String {
        let n = {
            let mut n = self.inner.n.lock().unwrap();
            *n += 1;
            *n
        };
        let id = format!("QXR0YWNobWVudEFjdGlvbi9{n}");
        let created = rfc3339(now_secs() - age_secs);
        self.inner.actions.lock().unwrap().insert(
            id.clone(),
            json!({"id": id, "type": "submit", "messageId": message["id"], "roomId": message["roomId"],
                   "personId": person, "inputs": {"airlock": token}, "created": created}),
        );
        json!({"id": "V2ViaG9vay8x", "name": "airlock", "targetUrl": "https://airlock.example/callbacks/webex",
               "resource": "attachmentActions", "event": "created", "orgId": "T3JnLzE", "createdBy": "QQ",
               "appId": "QXBwLzE", "ownedBy": "creator", "status": "active", "actorId": claimed,
               "data": {"id": id, "type": "submit", "messageId": message["id"], "personId": claimed,
                        "roomId": message["roomId"], "created": created}})
        .to_string()
    }

    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&Fake) -> bool) {
        let wait = async {
            while !done(self) {
                if self.events.recv().await.is_none() {
                    panic!("fake webex: event stream ended");
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("fake webex: timed out waiting for {what}"));
    }
}

/// Every text of the card and its fallback is inert: agent text only in TextRuns (plain
/// text), TextBlocks only our labels, no hidden characters, the markdown fully escaped.
pub fn assert_inert(post: &Value) {
    let card = &post["attachments"][0]["content"];
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
    for md in [post["markdown"].as_str().unwrap_or("")] {
        assert!(!md.chars().any(is_deceptive));
        let mut chars = md.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                assert!(
                    chars.next().is_some_and(|n| n.is_ascii_punctuation()),
                    "stray backslash: {md}"
                );
            } else {
                assert!(!c.is_ascii_punctuation(), "unescaped {c:?} in markdown: {md}");
            }
        }
    }
}

/// All TextRun texts, joined: what the approver reads.
pub fn shown(post: &Value) -> String {
    let card = &post["attachments"][0]["content"];
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
pub fn actions(post: &Value) -> Vec<(String, String)> {
    post["attachments"][0]["content"]["actions"]
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
