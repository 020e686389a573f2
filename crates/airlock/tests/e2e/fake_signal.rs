//! A local signal-cli daemon in HTTP mode (`signal-cli -a ACCOUNT daemon --http`), speaking
//! what its JSON-RPC docs describe: `POST /api/v1/rpc` with a JSON-RPC 2.0 request (`send`:
//! `params.recipient` an array of E.164 numbers, `params.message` the text; answered with
//! `result.timestamp`, or a JSON-RPC error), `GET /api/v1/events` a server-sent events stream
//! carrying one `receive` event per envelope (`{"envelope": {…}, "account": …}`), and
//! `GET /api/v1/check`. Like the daemon, the stream delivers what arrives while a client is
//! connected.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

pub const ACCOUNT: &str = "+15550000000";

struct St {
    /// Every message sent: (recipient, text, timestamp).
    sent: Mutex<Vec<(String, String, u64)>>,
    events: broadcast::Sender<String>,
    violations: Mutex<Vec<String>>,
    changed: Notify,
    clock: Mutex<u64>,
    /// Event-stream connections accepted so far.
    connections: Mutex<usize>,
}

fn e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn rpc(State(st): State<Arc<St>>, Json(req): Json<Value>) -> Json<Value> {
    let id = req["id"].clone();
    let error = |code: i64, why: String| {
        st.violations.lock().unwrap().push(why.clone());
        st.changed.notify_waiters();
        Json(json!({"jsonrpc": "2.0", "error": {"code": code, "message": why}, "id": id}))
    };
    if req["jsonrpc"] != "2.0" || id.is_null() {
        return error(-32600, format!("not a JSON-RPC 2.0 request: {req}"));
    }
    if req["method"] != "send" {
        return error(-32601, format!("method {} not found", req["method"]));
    }
    let p = &req["params"];
    let recipients: Vec<String> = p["recipient"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    let text = p["message"].as_str().unwrap_or_default();
    if recipients.len() != 1 || !recipients.iter().all(|r| e164(r)) || text.is_empty() {
        return error(-32602, format!("send takes recipient [E.164] and a message: {p}"));
    }
    if p.get("account").is_some_and(|a| a != ACCOUNT) {
        return error(-32602, "unknown account".into());
    }
    let ts = {
        let mut c = st.clock.lock().unwrap();
        *c += 1;
        *c
    };
    st.sent
        .lock()
        .unwrap()
        .push((recipients[0].clone(), text.to_string(), ts));
    st.changed.notify_waiters();
    Json(json!({"jsonrpc": "2.0", "result": {"timestamp": ts, "results": [
        {"recipientAddress": {"uuid": "u", "number": recipients[0]}, "type": "SUCCESS"}]}, "id": id}))
}

async fn events(State(st): State<Arc<St>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = st.events.subscribe();
    *st.connections.lock().unwrap() += 1;
    st.changed.notify_waiters();
    let stream = async_stream(move |tx| async move {
        while let Ok(data) = rx.recv().await {
            if tx.send(Ok(Event::default().event("receive").data(data))).await.is_err() {
                return;
            }
        }
    });
    Sse::new(stream)
}

/// A stream fed by a task.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

pub struct FakeSignal {
    pub url: String,
    st: Arc<St>,
}

impl FakeSignal {
    pub async fn start() -> FakeSignal {
        let st = Arc::new(St {
            sent: Mutex::new(Vec::new()),
            events: broadcast::channel(64).0,
            violations: Mutex::new(Vec::new()),
            changed: Notify::new(),
            clock: Mutex::new(1_700_000_000_000),
            connections: Mutex::new(0),
        });
        let app = axum::Router::new()
            .route("/api/v1/rpc", post(rpc))
            .route("/api/v1/events", get(events))
            .route("/api/v1/check", get(|| async { "" }))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSignal { url, st }
    }

    /// Event-stream connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.st.connections.lock().unwrap()
    }

    /// `from` sends the bot `text` (delivered to the connected event streams).
    pub fn message(&self, from: &str, text: &str) -> u64 {
        let ts = {
            let mut c = self.st.clock.lock().unwrap();
            *c += 1;
            *c
        };
        let env = json!({"envelope": {"source": from, "sourceNumber": from, "sourceUuid": format!("uuid-{from}"),
            "sourceName": "Someone", "sourceDevice": 1, "timestamp": ts,
            "dataMessage": {"timestamp": ts, "message": text, "expiresInSeconds": 0, "viewOnce": false}},
            "account": ACCOUNT});
        let _ = self.st.events.send(env.to_string());
        ts
    }

    /// Every text sent to `to`.
    pub fn sent_to(&self, to: &str) -> Vec<String> {
        self.st
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _, _)| r == to)
            .map(|(_, t, _)| t.clone())
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }

    pub async fn wait_until(&self, what: &str, pred: impl Fn(&FakeSignal) -> bool) {
        super::wait_notified(&self.st.changed, what, || pred(self), || self.violations()).await;
    }
}
