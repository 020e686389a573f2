//! The fake Gateway WebSocket: Hello, Identify → Ready, Resume → replay + Resumed, heartbeats
//! acknowledged (or not, to make a zombie), and the test's commands (dispatch, close, drop).
//!
//! Sessions as Discord documents them: a session outlives its connection (events dispatched
//! while no connection holds it are kept), Resume with its id and a sequence number it sent
//! replays every dispatch after that number and then says RESUMED; a client that closes with
//! 1000 or 1001 ends its session (a later Resume gets Invalid Session, `d: false`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::{APP_ID, BOT, Cmd, Event, Fake, Inner, Session};

#[allow(clippy::result_large_err)] // the handshake callback type is tungstenite's
pub(super) async fn conn(st: Arc<Inner>, stream: tokio::net::TcpStream) {
    let check = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                 resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
        let q = req.uri().query().unwrap_or("");
        if q.contains("v=10") && q.contains("encoding=json") {
            Ok(resp)
        } else {
            let mut r = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(None);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            Err(r)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        st.violation("gateway: handshake without ?v=10&encoding=json".into());
        return;
    };
    // Connected but not greeted while the test holds Hello back (a takeover in progress).
    let mut open = st.hello.subscribe();
    let _ = open.wait_for(|o| *o).await;
    let n = st.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let interval = st.heartbeat_ms.load(Ordering::SeqCst);
    let hello = json!({"op": 10, "d": {"heartbeat_interval": interval}, "s": null, "t": null});
    let _ = ws.send(Message::text(hello.to_string())).await;
    let mut ready = false;
    loop {
        tokio::select! {
            cmd = rx.recv(), if ready => match cmd {
                Some(Cmd::Send(s)) => if ws.send(Message::text(s)).await.is_err() { break },
                Some(Cmd::Close(code)) => {
                    let _ = ws.send(Message::Close(Some(CloseFrame { code: code.into(), reason: "".into() }))).await;
                    break;
                }
                Some(Cmd::Kill) | None => break,
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    match v["op"].as_u64() {
                        Some(1) => {
                            st.event(Event::Heartbeat(n));
                            let seq = st.session.lock().unwrap().seq;
                            if !(v["d"].is_null() || v["d"].as_u64().is_some_and(|s| s <= seq)) {
                                st.violation(format!("gateway: heartbeat with a sequence never sent: {}", v["d"]));
                            }
                            if st.ack_heartbeats.load(Ordering::SeqCst) {
                                let _ = ws.send(Message::text(json!({"op": 11}).to_string())).await;
                            }
                        }
                        Some(2) if !ready => {
                            let d = &v["d"];
                            if d["token"] != BOT {
                                let _ = ws.send(Message::Close(Some(CloseFrame { code: 4004.into(), reason: "Authentication failed.".into() }))).await;
                                break;
                            }
                            if !d["intents"].is_u64() || !d["properties"]["os"].is_string() || !d["properties"]["browser"].is_string() || !d["properties"]["device"].is_string() {
                                st.violation(format!("gateway: identify without intents/properties: {d}"));
                            }
                            let ready_payload = {
                                let mut s = st.session.lock().unwrap();
                                *s = Session { id: format!("session-{n}"), seq: 0, log: vec![] };
                                s.seq += 1;
                                json!({"op": 0, "t": "READY", "s": s.seq, "d": {"v": 10, "session_id": s.id,
                                    "resume_gateway_url": format!("ws://{}", st.ws_addr),
                                    "user": {"id": APP_ID, "bot": true, "username": "airlock"},
                                    "application": {"id": APP_ID, "flags": 0}, "guilds": []}})
                            };
                            let _ = ws.send(Message::text(ready_payload.to_string())).await;
                            *st.socket.lock().unwrap() = Some((n, tx.clone()));
                            ready = true;
                            st.event(Event::Ready(n));
                        }
                        Some(6) if !ready => {
                            let d = &v["d"];
                            let (valid, replay, seq) = {
                                let s = st.session.lock().unwrap();
                                let from = d["seq"].as_u64().unwrap_or(0);
                                let valid = d["token"] == BOT && !s.id.is_empty() && d["session_id"] == s.id.as_str()
                                    && d["seq"].is_u64() && from <= s.seq;
                                let replay: Vec<String> = s.log.iter().filter(|(q, _)| *q > from).map(|(_, p)| p.clone()).collect();
                                (valid, replay, s.seq)
                            };
                            if !valid {
                                st.event(Event::InvalidSession(n));
                                let _ = ws.send(Message::text(json!({"op": 9, "d": false}).to_string())).await;
                                continue;
                            }
                            for p in replay {
                                let v: Value = serde_json::from_str(&p).unwrap_or(Value::Null);
                                if let Some(id) = v["d"]["id"].as_str().filter(|_| v["t"] == "INTERACTION_CREATE")
                                    && let Some(i) = st.interactions.lock().unwrap().get_mut(id)
                                {
                                    i.replayed = true;
                                }
                                let _ = ws.send(Message::text(p)).await;
                            }
                            let resumed = json!({"op": 0, "t": "RESUMED", "s": seq + 1, "d": {}});
                            st.session.lock().unwrap().seq = seq + 1;
                            let _ = ws.send(Message::text(resumed.to_string())).await;
                            *st.socket.lock().unwrap() = Some((n, tx.clone()));
                            ready = true;
                            st.event(Event::Resumed(n));
                        }
                        _ => st.violation(format!("gateway: unexpected payload: {t}")),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    // "Closing with 1000 or 1001 invalidates the session"; any other code
                    // keeps it resumable. Only the session this connection holds.
                    let code = frame.map(|f| u16::from(f.code));
                    let holds = st.socket.lock().unwrap().as_ref().is_some_and(|(m, _)| *m == n);
                    if holds && matches!(code, Some(1000 | 1001)) {
                        st.session.lock().unwrap().id.clear();
                    }
                    st.event(Event::ClientClosed(n, code));
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
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

/// The test's hand on the Gateway.
impl Fake {
    /// Holds Hello back from new connections (`false`) until released (`true`): a reader that
    /// connects meanwhile waits, so a test knows no reader is connected.
    pub fn greet(&self, on: bool) {
        self.inner.hello.send_replace(on);
    }

    /// Whether a reader holds the session now (identified or resumed, not closed).
    pub fn live(&self) -> bool {
        self.inner.socket.lock().unwrap().is_some()
    }

    /// The current session's id and last sequence number ("" once it ended).
    pub fn session(&self) -> (String, u64) {
        let s = self.inner.session.lock().unwrap();
        (s.id.clone(), s.seq)
    }

    /// The Gateway's URL (also every session's `resume_gateway_url`).
    pub fn gateway_url(&self) -> String {
        format!("ws://{}", self.inner.ws_addr)
    }

    pub fn set_heartbeat_ms(&self, ms: u64) {
        self.inner.heartbeat_ms.store(ms, Ordering::SeqCst);
    }

    pub fn ack_heartbeats(&self, on: bool) {
        self.inner.ack_heartbeats.store(on, Ordering::SeqCst);
    }

    /// Dispatches an event on the Gateway (logged for Resume); it reaches the reader if one is
    /// connected now, or on resume.
    pub fn dispatch(&self, t: &str, d: Value) {
        let (payload, cur) = {
            let mut s = self.inner.session.lock().unwrap();
            s.seq += 1;
            let p = json!({"op": 0, "t": t, "s": s.seq, "d": d}).to_string();
            let seq = s.seq;
            s.log.push((seq, p.clone()));
            (p, self.inner.socket.lock().unwrap().as_ref().map(|(_, tx)| tx.clone()))
        };
        if let Some(tx) = cur {
            let _ = tx.send(Cmd::Send(payload));
        }
    }

    /// A press over the Gateway; returns the interaction id.
    pub fn press(&self, user: &str, custom_id: &str, message: &str) -> String {
        let v = self.new_press(user, custom_id, message, Duration::ZERO);
        let id = v["id"].as_str().unwrap().to_string();
        self.dispatch("INTERACTION_CREATE", v);
        id
    }

    fn current(&self) -> mpsc::UnboundedSender<Cmd> {
        self.inner
            .socket
            .lock()
            .unwrap()
            .as_ref()
            .map(|(_, tx)| tx.clone())
            .expect("a reader on the Gateway")
    }

    pub fn send_op(&self, v: Value) {
        self.current().send(Cmd::Send(v.to_string())).unwrap();
    }

    pub fn close_gateway(&self, code: u16) {
        self.current().send(Cmd::Close(code)).unwrap();
    }

    /// Drops the Gateway connection without a close frame (a network failure).
    pub fn kill_gateway(&self) {
        self.current().send(Cmd::Kill).unwrap();
    }
}
