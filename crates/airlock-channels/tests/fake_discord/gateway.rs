//! The fake Gateway WebSocket: Hello, Identify → Ready, Resume → replay + Resumed, heartbeats
//! acknowledged (or not, to make a zombie), and the test's commands (dispatch, close, drop).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::{APP_ID, BOT, Cmd, Event, Inner, Session};

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
                                let valid = d["token"] == BOT && d["session_id"] == s.id.as_str() && d["seq"].is_u64();
                                let from = d["seq"].as_u64().unwrap_or(0);
                                let replay: Vec<String> = s.log.iter().filter(|(q, _)| *q > from).map(|(_, p)| p.clone()).collect();
                                (valid, replay, s.seq)
                            };
                            if !valid {
                                let _ = ws.send(Message::text(json!({"op": 9, "d": false}).to_string())).await;
                                continue;
                            }
                            for p in replay {
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
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
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
