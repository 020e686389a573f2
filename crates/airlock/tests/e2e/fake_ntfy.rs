//! A local ntfy server enforcing what its docs say of publishing as JSON
//! (docs.ntfy.sh/publish, "Publish as JSON", "Action buttons", "Limitations"): a POST to the
//! root URL only, the access token as `Authorization: Bearer`, `topic` required and a valid
//! topic name, only the documented fields, priority 1-5, up to three actions of the documented
//! shapes, a message of at most 4,096 bytes (beyond it ntfy turns it into an attachment).
//! It answers with the message object, as ntfy does, and records what it accepted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const TOKEN: &str = "tk_e2eNtfyAccessToken7d3f0a9b2c";

const FIELDS: &[&str] = &[
    "topic", "message", "title", "tags", "priority", "actions", "click", "attach", "markdown", "icon", "filename",
    "delay", "email", "call",
];
const HTTP_ACTION: &[&str] = &["action", "label", "url", "method", "headers", "body", "clear"];

#[derive(Default)]
struct St {
    published: Mutex<Vec<Value>>,
    violations: Mutex<Vec<String>>,
    changed: Notify,
}

pub struct FakeNtfy {
    pub url: String,
    st: Arc<St>,
}

fn is_topic(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why ntfy would refuse (or mangle) this message, if it would.
fn check(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("not a JSON object")?;
    for k in o.keys() {
        if !FIELDS.contains(&k.as_str()) {
            return Err(format!("unknown field {k:?}"));
        }
    }
    if !o.get("topic").and_then(Value::as_str).is_some_and(is_topic) {
        return Err("topic missing or not a topic name".into());
    }
    if let Some(m) = o.get("message") {
        let m = m.as_str().ok_or("message is not a string")?;
        if m.len() > 4096 {
            return Err(format!("message of {} bytes would become an attachment", m.len()));
        }
    }
    if let Some(p) = o.get("priority")
        && !p.as_u64().is_some_and(|p| (1..=5).contains(&p))
    {
        return Err(format!("priority {p}"));
    }
    if let Some(t) = o.get("tags")
        && !t.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return Err("tags is not a string array".into());
    }
    if o.get("markdown").is_some_and(|m| m != &json!(false)) {
        return Err("markdown: the card is plain text".into());
    }
    let actions = match o.get("actions") {
        None => return Ok(()),
        Some(a) => a.as_array().ok_or("actions is not an array")?,
    };
    if actions.len() > 3 {
        return Err(format!("{} actions (ntfy allows three)", actions.len()));
    }
    for a in actions {
        let a = a.as_object().ok_or("an action is not an object")?;
        if a.get("action") != Some(&json!("http")) {
            return Err(format!("action {:?}: only http actions are expected", a.get("action")));
        }
        for k in a.keys() {
            if !HTTP_ACTION.contains(&k.as_str()) {
                return Err(format!("unknown http action field {k:?}"));
            }
        }
        if a.get("label").and_then(Value::as_str).is_none_or(|l| l.is_empty()) {
            return Err("action without label".into());
        }
        if !a
            .get("url")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with("https://"))
        {
            return Err("http action without an https url".into());
        }
        if let Some(h) = a.get("headers")
            && !h.as_object().is_some_and(|h| h.values().all(Value::is_string))
        {
            return Err("headers is not a map of strings".into());
        }
        if a.get("body").is_some_and(|b| !b.is_string()) || a.get("clear").is_some_and(|c| !c.is_boolean()) {
            return Err("body must be a string, clear a boolean".into());
        }
    }
    Ok(())
}

async fn publish(State(st): State<Arc<St>>, uri: Uri, headers: HeaderMap, body: Bytes) -> (StatusCode, Json<Value>) {
    let refuse = |st: &St, code: StatusCode, why: String| {
        st.violations.lock().unwrap().push(why.clone());
        st.changed.notify_waiters();
        (
            code,
            Json(json!({"code": code.as_u16() as u32 * 100 + 1, "http": code.as_u16(), "error": why})),
        )
    };
    if uri.path() != "/" {
        return refuse(
            &st,
            StatusCode::BAD_REQUEST,
            format!("JSON published to {} instead of the root URL", uri.path()),
        );
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(format!("Bearer {TOKEN}").as_str()) {
        return refuse(&st, StatusCode::UNAUTHORIZED, "unauthorized".into());
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(&st, StatusCode::BAD_REQUEST, format!("not JSON: {e}")),
    };
    if let Err(why) = check(&v) {
        return refuse(&st, StatusCode::BAD_REQUEST, why);
    }
    let n = {
        let mut p = st.published.lock().unwrap();
        p.push(v.clone());
        p.len()
    };
    st.changed.notify_waiters();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (
        StatusCode::OK,
        Json(
            json!({"id": format!("msg{n:09}"), "time": now, "expires": now + 43200, "event": "message",
            "topic": v["topic"], "message": v["message"], "title": v["title"]}),
        ),
    )
}

impl FakeNtfy {
    pub async fn start() -> FakeNtfy {
        let st = Arc::new(St::default());
        let app = axum::Router::new().fallback(publish).with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeNtfy { url, st }
    }

    pub fn published(&self) -> Vec<Value> {
        self.st.published.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }

    /// Waits (bounded, no sleeping) for an accepted message matching `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                let notified = self.st.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(v) = self.published().into_iter().find(&pred) {
                    return v;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} (violations: {:?})", self.violations()))
    }
}
