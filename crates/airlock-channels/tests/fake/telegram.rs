//! A local Bot API on 127.0.0.1 that enforces what the docs say: `/bot<token>/<method>`,
//! `{"ok":…}` answers, HTML parse mode that must parse, text ≤ 4096 after entity parsing,
//! callback_data 1-64 bytes, answerCallbackQuery text ≤ 200, and getUpdates long polling
//! where an update is forgotten once a call's `offset` passes it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::tg_html;

/// Distinctive so a leak is easy to spot in any string.
pub const TOKEN: &str = "123456789:AAFakeToken-DISTINCTIVE_x9";

type Answer = (StatusCode, Json<Value>);

#[derive(Default)]
struct St {
    calls: Mutex<Vec<(String, Value)>>,
    called: Notify,
    updates: Mutex<VecDeque<Value>>,
    /// Every update ever queued, by id, so one can be sent again.
    pushed: Mutex<HashMap<i64, Value>>,
    /// Updates to send once more whatever the offset says (a retried response, a proxy).
    replays: Mutex<VecDeque<Value>>,
    new_update: Notify,
    next_update: AtomicI64,
    next_message: AtomicI64,
    /// (chat, message_id) → (text, reply_markup).
    messages: Mutex<HashMap<(String, i64), (String, Value)>>,
    fail_next: Mutex<Option<Answer>>,
}

pub struct FakeTelegram {
    pub base: String,
    st: Arc<St>,
}

fn ok(result: Value) -> Answer {
    (StatusCode::OK, Json(json!({ "ok": true, "result": result })))
}

fn refuse(code: StatusCode, description: &str) -> Answer {
    (
        code,
        Json(json!({ "ok": false, "error_code": code.as_u16(), "description": description })),
    )
}

fn bad(description: impl AsRef<str>) -> Answer {
    refuse(StatusCode::BAD_REQUEST, description.as_ref())
}

fn chat_of(body: &Value) -> Result<String, Answer> {
    match &body["chat_id"] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(bad("Bad Request: chat_id is empty")),
    }
}

fn check_text(body: &Value) -> Result<tg_html::Parsed, Answer> {
    if body["parse_mode"] != "HTML" {
        return Err(bad("Bad Request: this fake only speaks parse_mode HTML"));
    }
    let Some(text) = body["text"].as_str() else {
        return Err(bad("Bad Request: message text is empty"));
    };
    let parsed = tg_html::parse(text).map_err(|e| bad(format!("Bad Request: can't parse entities: {e}")))?;
    match parsed.len() {
        0 => Err(bad("Bad Request: message text is empty")),
        n if n > 4096 => Err(bad("Bad Request: message is too long")),
        _ => Ok(parsed),
    }
}

fn check_markup(markup: &Value) -> Result<(), Answer> {
    let Some(rows) = markup["inline_keyboard"].as_array() else {
        return Err(bad("Bad Request: inline keyboard expected"));
    };
    for row in rows {
        let Some(row) = row.as_array() else {
            return Err(bad("Bad Request: keyboard row must be an array"));
        };
        for button in row {
            let text = button["text"].as_str().unwrap_or_default();
            let Some(data) = button["callback_data"].as_str() else {
                return Err(bad("Bad Request: only callback buttons are expected here"));
            };
            if text.is_empty() || button.as_object().map(|o| o.len()) != Some(2) {
                return Err(bad("Bad Request: a button needs text and exactly one action"));
            }
            if data.is_empty() || data.len() > 64 {
                return Err(bad("Bad Request: BUTTON_DATA_INVALID"));
            }
        }
    }
    Ok(())
}

fn check_preview(body: &Value) -> Result<(), Answer> {
    match &body["link_preview_options"] {
        Value::Null => Ok(()),
        Value::Object(o) if o.get("is_disabled").is_none_or(Value::is_boolean) => Ok(()),
        _ => Err(bad("Bad Request: bad link_preview_options")),
    }
}

async fn handle(
    State(st): State<Arc<St>>,
    Path((bot, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    if bot.strip_prefix("bot") != Some(TOKEN) {
        return refuse(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return bad("Bad Request: expected a JSON body");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("Bad Request: invalid JSON");
    };
    st.calls.lock().unwrap().push((method.clone(), body.clone()));
    st.called.notify_waiters();
    if let Some(answer) = st.fail_next.lock().unwrap().take() {
        return answer;
    }
    let result = match method.as_str() {
        "sendMessage" => send_message(&st, &body),
        "editMessageText" => edit_message_text(&st, &body),
        "answerCallbackQuery" => answer_callback_query(&body),
        "getUpdates" => Ok(get_updates(&st, &body).await),
        _ => Err(refuse(StatusCode::NOT_FOUND, "Not Found")),
    };
    // Again once handled, for tests waiting on what the fake now holds (`wait_until`).
    st.called.notify_waiters();
    result.unwrap_or_else(|e| e)
}

fn send_message(st: &St, body: &Value) -> Result<Answer, Answer> {
    let chat = chat_of(body)?;
    let parsed = check_text(body)?;
    check_preview(body)?;
    if !body["reply_markup"].is_null() {
        check_markup(&body["reply_markup"])?;
    }
    let id = st.next_message.fetch_add(1, Ordering::SeqCst) + 1;
    let text = body["text"].as_str().unwrap_or_default().to_string();
    st.messages
        .lock()
        .unwrap()
        .insert((chat.clone(), id), (text, body["reply_markup"].clone()));
    let chat_id = chat.parse::<i64>().map(Value::from).unwrap_or(Value::String(chat));
    Ok(ok(json!({
        "message_id": id, "date": 0, "chat": { "id": chat_id, "type": "private" }, "text": parsed.text,
    })))
}

fn edit_message_text(st: &St, body: &Value) -> Result<Answer, Answer> {
    let chat = chat_of(body)?;
    let Some(id) = body["message_id"].as_i64() else {
        return Err(bad("Bad Request: message identifier is not specified"));
    };
    let parsed = check_text(body)?;
    check_preview(body)?;
    if !body["reply_markup"].is_null() {
        check_markup(&body["reply_markup"])?;
    }
    let mut messages = st.messages.lock().unwrap();
    let Some(msg) = messages.get_mut(&(chat.clone(), id)) else {
        return Err(bad("Bad Request: message to edit not found"));
    };
    let new = (
        body["text"].as_str().unwrap_or_default().to_string(),
        body["reply_markup"].clone(),
    );
    if *msg == new {
        return Err(bad(
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        ));
    }
    *msg = new;
    Ok(ok(
        json!({ "message_id": id, "date": 0, "chat": { "id": chat.parse::<i64>().ok() }, "text": parsed.text }),
    ))
}

fn answer_callback_query(body: &Value) -> Result<Answer, Answer> {
    if body["callback_query_id"].as_str().is_none_or(str::is_empty) {
        return Err(bad("Bad Request: query_id is empty"));
    }
    match &body["text"] {
        Value::Null => {}
        Value::String(t) if t.encode_utf16().count() <= 200 => {}
        _ => return Err(bad("Bad Request: MESSAGE_TOO_LONG")),
    }
    if !(body["show_alert"].is_null() || body["show_alert"].is_boolean()) {
        return Err(bad("Bad Request: show_alert must be a boolean"));
    }
    Ok(ok(json!(true)))
}

async fn get_updates(st: &St, body: &Value) -> Answer {
    if body["allowed_updates"] != json!(["callback_query"]) {
        return bad("Bad Request: airlock asks for callback_query updates only");
    }
    let Some(timeout) = body.get("timeout").map_or(Some(0), Value::as_u64) else {
        return bad("Bad Request: timeout must be an integer");
    };
    let Some(limit) = body
        .get("limit")
        .map_or(Some(100), Value::as_u64)
        .filter(|l| (1..=100).contains(l))
    else {
        return bad("Bad Request: limit must be 1-100");
    };
    if let Some(offset) = body.get("offset") {
        let Some(offset) = offset.as_i64() else {
            return bad("Bad Request: offset must be an integer");
        };
        // Confirmed: forgotten for good.
        st.updates
            .lock()
            .unwrap()
            .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = st.new_update.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let q = st.updates.lock().unwrap();
            let mut replays = st.replays.lock().unwrap();
            if !q.is_empty() || !replays.is_empty() || tokio::time::Instant::now() >= deadline {
                let batch = replays.drain(..).chain(q.iter().cloned()).take(limit as usize);
                return ok(Value::Array(batch.collect()));
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let st = Arc::new(St::default());
        let app = axum::Router::new()
            .route("/{bot}/{method}", axum::routing::post(handle))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTelegram { base, st }
    }

    /// Bodies of the calls to `method`, in order.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        let calls = self.st.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits (without sleeping) until the recorded calls satisfy `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[(String, Value)]) -> bool) {
        let wait = async {
            loop {
                let notified = self.st.called.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if pred(&self.st.calls.lock().unwrap()) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    /// Waits (without sleeping) until `done` holds for the fake's state, e.g. a message
    /// as accepted after an edit.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&FakeTelegram) -> bool) {
        let wait = async {
            loop {
                let notified = self.st.called.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if done(self) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    /// The next call, whatever it is, gets this answer.
    pub fn fail_next(&self, code: StatusCode, body: Value) {
        *self.st.fail_next.lock().unwrap() = Some((code, Json(body)));
    }

    /// Queues an update (`kind` is e.g. `{"message": {...}}`) and returns its update_id.
    pub fn push_update(&self, kind: Value) -> i64 {
        let id = self.st.next_update.fetch_add(1, Ordering::SeqCst) + 1;
        let mut update = kind;
        update["update_id"] = id.into();
        self.st.pushed.lock().unwrap().insert(id, update.clone());
        self.st.updates.lock().unwrap().push_back(update);
        self.st.new_update.notify_waiters();
        id
    }

    /// Sends update `id` again in the next getUpdates answer, even when an offset already
    /// confirmed it (which the real Bot API should never do, and a reader must survive).
    pub fn redeliver(&self, id: i64) {
        let update = self.st.pushed.lock().unwrap()[&id].clone();
        self.st.replays.lock().unwrap().push_back(update);
        self.st.new_update.notify_waiters();
    }

    /// Re-deliveries not yet sent.
    pub fn pending_redeliveries(&self) -> usize {
        self.st.replays.lock().unwrap().len()
    }

    pub fn push_click(&self, user: i64, data: &str) -> i64 {
        let n = self.st.next_update.load(Ordering::SeqCst) + 1;
        self.push_update(json!({ "callback_query": {
            "id": format!("cq{n}"),
            "from": { "id": user, "is_bot": false, "first_name": "Alice" },
            "chat_instance": "1",
            "data": data,
            "message": { "message_id": 1, "date": 0, "chat": { "id": user, "type": "private" } },
        }}))
    }

    /// A message as the fake holds it (text, reply_markup): only sends and edits it accepted.
    pub fn message(&self, chat: &str, id: i64) -> Option<(String, Value)> {
        self.st.messages.lock().unwrap().get(&(chat.to_string(), id)).cloned()
    }

    /// Updates Telegram still holds (not yet confirmed by an offset).
    pub fn unconfirmed(&self) -> usize {
        self.st.updates.lock().unwrap().len()
    }
}
