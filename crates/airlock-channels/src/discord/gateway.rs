//! The Gateway reader ("Gateway" in Discord's docs): `GET /gateway/bot` names the WebSocket;
//! Discord says Hello (op 10) with a heartbeat interval; we Identify (op 2) or Resume (op 6) a
//! session we had, heartbeat (op 1) with the last sequence number and expect each beat to be
//! acknowledged (op 11) before the next, else the connection is a zombie and is resumed.
//! Reconnect (op 7) and Invalid Session (op 9) are followed; fatal close codes (bad token,
//! disallowed intents) stop the reader with an error. Interactions are dispatched to every
//! bot connection whatever its intents, so we identify with none.
//!
//! A click (`INTERACTION_CREATE`) is answered with a deferred update at once, inside the
//! 3-second window, then handed to the hub. Logs carry op codes and event names, never the
//! token or interaction tokens.
//!
//! The session is kept in the store ([`super::session`]): the replica that takes the reader
//! over resumes it, and Discord replays the clicks dispatched while no reader was connected.
//! Stopping closes with a code that keeps the session resumable (1000 and 1001 end it).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Method;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::Discord;
use super::api::Auth;
use super::session::{self, Note, Saved, Tracker};
use super::verify::click_from_interaction;
use crate::Click;

const MAX_MESSAGE: usize = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// Discord's documented range for Invalid Session: wait 1 to 5 s before identifying again.
const INVALID_SESSION_WAIT: Duration = Duration::from_secs(1);
/// The deferred answer must land inside Discord's 3 s; past this it cannot matter.
const DEFER_TIMEOUT: Duration = Duration::from_millis(2500);

/// Close codes after which reconnecting cannot help (4004 authentication failed, 4010–4014:
/// shard or intent configuration).
fn is_fatal(code: u16) -> bool {
    matches!(code, 4004 | 4010 | 4011 | 4012 | 4013 | 4014)
}

/// Close codes after which the session cannot be resumed (invalid seq, session timed out).
fn ends_session(code: u16) -> bool {
    matches!(code, 4007 | 4009)
}

/// Our close code when stopping: any code but 1000/1001 leaves the session resumable.
const CLOSE_RESUMABLE: u16 = 4000;

/// What a session we can resume needs.
struct Resume {
    session_id: String,
    url: String,
}

enum End {
    Shutdown,
    Fatal(String),
    Reconnect { healthy: bool, wait: Option<Duration> },
}

struct State {
    resume: Option<Resume>,
    /// The last sequence number received (heartbeats, and resuming in this process).
    seq: Option<u64>,
    /// Counts sessions (READY), so a late click of an old one is told apart.
    generation: u64,
    /// To the task keeping the session in the store.
    notes: mpsc::UnboundedSender<Note>,
}

impl State {
    fn note(&self, n: Note) {
        // The persister ends only after the reader: a failed send cannot happen in practice.
        let _ = self.notes.send(n);
    }

    fn forget(&mut self) {
        self.resume = None;
        self.seq = None;
        self.note(Note::Forget);
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn loggable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_CAP)
}

fn tls() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn describe(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => format!("io: {}", io.kind()),
        tungstenite::Error::Http(resp) => format!("HTTP {}", resp.status().as_u16()),
        tungstenite::Error::Tls(_) => "TLS handshake failed".to_string(),
        tungstenite::Error::Url(_) => "unusable gateway URL".to_string(),
        _ => "WebSocket protocol error".to_string(),
    }
}

/// `wss://` always; `ws://` only when the REST API itself is plain HTTP (a local fake), so a
/// real deployment never downgrades.
fn usable_url(d: &Discord, url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let ok = match u.scheme() {
        "wss" => true,
        "ws" => d.api.base().starts_with("http://"),
        _ => false,
    };
    ok.then(|| format!("{}/?v=10&encoding=json", url.trim_end_matches('/')))
}

/// A resume URL read back from the store receives the bot token: only Discord's gateway hosts
/// (`*.discord.gg`) or the host of the configured REST API (a local fake, a proxy) qualify, so
/// whoever can write the store cannot point the token elsewhere.
fn trusted_resume_url(d: &Discord, url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    let api_host = reqwest::Url::parse(d.api.base())
        .ok()
        .and_then(|a| a.host_str().map(str::to_string));
    let ours = host == "discord.gg" || host.ends_with(".discord.gg") || api_host.as_deref() == Some(host);
    ours && usable_url(d, url).is_some()
}

/// The session stored by the last reader, when it can be resumed from here.
async fn stored(d: &Discord) -> Option<Saved> {
    let saved = session::load(&*d.memory).await?;
    if trusted_resume_url(d, &saved.resume_url) {
        Some(saved)
    } else {
        tracing::warn!("discord gateway: the stored resume URL is not a Discord gateway; identifying afresh");
        None
    }
}

pub(crate) async fn run(d: Arc<Discord>, clicks: mpsc::Sender<Click>, mut shutdown: watch::Receiver<bool>) {
    let tls = match tls() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "discord gateway: TLS setup failed; not started");
            return;
        }
    };
    let saved = stored(&d).await;
    let tracker = saved.as_ref().map(Tracker::resuming).unwrap_or_default();
    let (notes, rx) = mpsc::unbounded_channel();
    tokio::spawn(session::persist(d.memory.clone(), tracker, rx, shutdown.clone()));
    let mut state = State {
        resume: saved.as_ref().map(|s| Resume {
            session_id: s.session_id.clone(),
            url: s.resume_url.clone(),
        }),
        seq: saved.map(|s| s.seq),
        generation: 0,
        notes,
    };
    if state.resume.is_some() {
        tracing::info!("discord gateway: resuming the session the previous reader stored");
    }
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() || clicks.is_closed() {
            return;
        }
        let delay = match session(&d, &tls, &mut state, &clicks, &mut shutdown).await {
            End::Shutdown => return,
            End::Fatal(why) => {
                tracing::error!(reason = %why, "discord gateway: Discord refused the bot; clicks will not arrive over the Gateway");
                return;
            }
            End::Reconnect { healthy: true, wait } => {
                failures = 0;
                wait.unwrap_or(Duration::ZERO)
            }
            End::Reconnect { healthy: false, wait } => {
                failures = failures.saturating_add(1);
                backoff(failures).max(wait.unwrap_or_default())
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

fn op(v: &Value) -> Option<u64> {
    v["op"].as_u64()
}

async fn session(
    d: &Arc<Discord>,
    tls: &Arc<rustls::ClientConfig>,
    state: &mut State,
    clicks: &mpsc::Sender<Click>,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let failed = End::Reconnect {
        healthy: false,
        wait: None,
    };
    let base_url = match &state.resume {
        Some(r) => r.url.clone(),
        None => {
            let got = tokio::select! {
                r = d.api.call(Method::GET, "get gateway", "/gateway/bot", Auth::Bot, None) => r,
                _ = stopped(shutdown) => return End::Shutdown,
            };
            match got {
                Ok(v) => match v["url"].as_str() {
                    Some(u) => u.to_string(),
                    None => {
                        tracing::warn!("discord gateway: /gateway/bot gave no url");
                        return failed;
                    }
                },
                Err(crate::ChannelError::Platform { detail, .. }) if detail.contains("HTTP 401") => {
                    return End::Fatal("the bot token was refused (HTTP 401)".into());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "discord gateway: cannot get the gateway URL");
                    return End::Reconnect {
                        healthy: false,
                        wait: match e {
                            crate::ChannelError::RateLimited { retry_after_secs, .. } => {
                                Some(Duration::from_secs(retry_after_secs))
                            }
                            _ => None,
                        },
                    };
                }
            }
        }
    };
    let Some(url) = usable_url(d, &base_url) else {
        tracing::warn!("discord gateway: the gateway URL is not wss://");
        state.resume = None;
        return failed;
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connect = connect_async_tls_with_config(url, Some(config), false, Some(Connector::Rustls(tls.clone())));
    let mut ws = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connect) => match r {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                tracing::warn!(error = %describe(&e), "discord gateway: connect failed");
                return failed;
            }
            Err(_) => {
                tracing::warn!("discord gateway: connect timed out");
                return failed;
            }
        },
        _ = stopped(shutdown) => return End::Shutdown,
    };

    // Hello first, with the heartbeat interval.
    let hello = tokio::select! {
        r = tokio::time::timeout(HELLO_TIMEOUT, next_json(&mut ws)) => r.ok().flatten(),
        _ = stopped(shutdown) => return End::Shutdown,
    };
    let interval = match hello {
        Some(Ok(v)) if op(&v) == Some(10) => match v["d"]["heartbeat_interval"].as_u64() {
            Some(ms) if (1..=600_000).contains(&ms) => Duration::from_millis(ms),
            _ => {
                tracing::warn!("discord gateway: Hello without a usable heartbeat_interval");
                return failed;
            }
        },
        Some(Err(code)) => return closed(state, code, false),
        _ => {
            tracing::warn!("discord gateway: no Hello");
            return failed;
        }
    };
    let Ok(token) = std::str::from_utf8(d.api.bot_token().expose()) else {
        return End::Fatal("the bot token is not UTF-8".into());
    };
    let hello_answer = match (&state.resume, state.seq) {
        (Some(r), Some(seq)) => json!({"op": 6, "d": {"token": token, "session_id": r.session_id, "seq": seq}}),
        _ => {
            state.resume = None;
            json!({"op": 2, "d": {
                "token": token,
                "intents": 0,
                "properties": {"os": std::env::consts::OS, "browser": "airlock", "device": "airlock"},
            }})
        }
    };
    if ws.send(Message::text(hello_answer.to_string())).await.is_err() {
        return failed;
    }

    let mut healthy = false;
    let jitter: f64 = rand::thread_rng().r#gen();
    let mut next_beat = Instant::now() + interval.mul_f64(jitter);
    let mut acked = true;
    loop {
        let frame = tokio::select! {
            f = next_json(&mut ws) => f,
            _ = tokio::time::sleep_until(next_beat) => {
                if !acked {
                    tracing::warn!("discord gateway: heartbeat not acknowledged; reconnecting");
                    let _ = ws.close(None).await;
                    return End::Reconnect { healthy, wait: None };
                }
                let beat = json!({"op": 1, "d": state.seq}).to_string();
                if ws.send(Message::text(beat)).await.is_err() {
                    return End::Reconnect { healthy, wait: None };
                }
                acked = false;
                next_beat = Instant::now() + interval;
                continue;
            }
            _ = stopped(shutdown) => {
                // Not a normal close (that would end the session): the replica that reads
                // next resumes it and gets what was dispatched in between.
                let frame = tungstenite::protocol::CloseFrame {
                    code: CLOSE_RESUMABLE.into(),
                    reason: "".into(),
                };
                let _ = ws.close(Some(frame)).await;
                return End::Shutdown;
            }
        };
        let v = match frame {
            Some(Ok(v)) => v,
            Some(Err(code)) => return closed(state, code, healthy),
            None => return End::Reconnect { healthy, wait: None },
        };
        match op(&v) {
            Some(0) => {
                let s = v["s"].as_u64();
                if let Some(s) = s {
                    state.seq = Some(state.seq.map_or(s, |old| old.max(s)));
                }
                let event = v["t"].as_str().unwrap_or("");
                let mut click = false;
                match event {
                    "READY" => {
                        let sid = v["d"]["session_id"].as_str().unwrap_or("");
                        let url = v["d"]["resume_gateway_url"].as_str().unwrap_or("");
                        state.resume = (!sid.is_empty() && !url.is_empty()).then(|| Resume {
                            session_id: sid.to_string(),
                            url: url.to_string(),
                        });
                        state.generation += 1;
                        match &state.resume {
                            Some(r) => state.note(Note::Ready {
                                generation: state.generation,
                                session_id: r.session_id.clone(),
                                resume_url: r.url.clone(),
                                seq: s.unwrap_or(0),
                            }),
                            None => state.note(Note::Forget),
                        }
                        healthy = true;
                        tracing::info!("discord gateway: connected");
                        continue;
                    }
                    "RESUMED" => {
                        healthy = true;
                        tracing::info!("discord gateway: session resumed");
                    }
                    "INTERACTION_CREATE" => click = interaction(d, &v["d"], clicks, state, s),
                    _ => tracing::debug!(event = %loggable(event), "discord gateway: event"),
                }
                if let Some(seq) = s {
                    state.note(Note::Read { seq, click });
                }
            }
            Some(1) => {
                let beat = json!({"op": 1, "d": state.seq}).to_string();
                if ws.send(Message::text(beat)).await.is_err() {
                    return End::Reconnect { healthy, wait: None };
                }
            }
            Some(7) => {
                tracing::info!("discord gateway: Discord asked to reconnect");
                let _ = ws.close(None).await;
                return End::Reconnect {
                    healthy: true,
                    wait: None,
                };
            }
            Some(9) => {
                if v["d"].as_bool() != Some(true) {
                    state.forget();
                }
                tracing::info!("discord gateway: invalid session");
                let _ = ws.close(None).await;
                return End::Reconnect {
                    healthy: true,
                    wait: Some(INVALID_SESSION_WAIT),
                };
            }
            Some(11) => acked = true,
            other => tracing::debug!(op = ?other, "discord gateway: unexpected op"),
        }
    }
}

/// The connection was closed with `code`.
fn closed(state: &mut State, code: u16, healthy: bool) -> End {
    if is_fatal(code) {
        return End::Fatal(format!("close code {code}"));
    }
    if ends_session(code) {
        state.forget();
    }
    tracing::info!(code, "discord gateway: connection closed");
    End::Reconnect { healthy, wait: None }
}

/// The next JSON payload: `None` when the connection ended without a close code,
/// `Some(Err(code))` when it was closed with one.
async fn next_json<S>(ws: &mut S) -> Option<Result<Value, u16>>
where
    S: StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(v) => return Some(Ok(v)),
                Err(_) => tracing::warn!("discord gateway: a payload is not JSON; ignored"),
            },
            Ok(Message::Close(Some(frame))) => return Some(Err(u16::from(frame.code))),
            Ok(Message::Close(None)) => return None,
            // We asked for JSON without compression: binary frames are not ours to read.
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %describe(&e), "discord gateway: read failed");
                return None;
            }
        }
    }
}

/// Answers a click at once (deferred update) and hands it to the hub; other interactions are
/// left to whatever else answers them. True when it is a click: the store's watermark stays
/// below `seq` until the hub applied it.
fn interaction(d: &Arc<Discord>, v: &Value, clicks: &mpsc::Sender<Click>, state: &State, seq: Option<u64>) -> bool {
    let mut click = match click_from_interaction(v, "gateway") {
        Ok(Some(c)) => c,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "discord gateway: unusable interaction");
            return false;
        }
    };
    let (guard, mut applied) = crate::Done::pair();
    click.done = guard;
    let (d, clicks, notes, generation) = (d.clone(), clicks.clone(), state.notes.clone(), state.generation);
    tokio::spawn(async move {
        match tokio::time::timeout(DEFER_TIMEOUT, d.defer(&click)).await {
            Ok(Ok(())) => {}
            // The click is authentic (it came over our connection): it still counts, even if
            // the clicker saw Discord's "interaction failed".
            Ok(Err(e)) => tracing::warn!(error = %e, "discord gateway: could not answer an interaction in time"),
            Err(_) => tracing::warn!("discord gateway: answering an interaction timed out"),
        }
        if clicks.send(click).await.is_err() {
            tracing::info!("discord gateway: click receiver gone");
            return;
        }
        // Resolves once the hub dropped the click (applied, or refused for good).
        let _ = applied.recv().await;
        if let Some(seq) = seq {
            let _ = notes.send(Note::Applied { generation, seq });
        }
    });
    seq.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_and_backoff() {
        assert!(is_fatal(4004) && is_fatal(4014) && !is_fatal(4000) && !is_fatal(1000));
        assert!(ends_session(4007) && ends_session(4009) && !ends_session(4000));
        assert_eq!(backoff(1), BACKOFF_START);
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    fn discord(api_base: &str) -> Discord {
        Discord::new(super::super::DiscordConfig {
            api_base: api_base.into(),
            bot_token: airlock_vault::SecretBytes::new(b"t".to_vec()),
            gateway: true,
            public_key: None,
            memory: Arc::new(crate::memory::Volatile::new()),
        })
    }

    #[test]
    fn only_discord_gateways_may_come_back_from_the_store() {
        let real = discord(super::super::DEFAULT_API_BASE);
        assert!(trusted_resume_url(&real, "wss://gateway-us-east1-b.discord.gg"));
        assert!(trusted_resume_url(&real, "wss://gateway.discord.gg/"));
        assert!(!trusted_resume_url(&real, "ws://gateway.discord.gg"), "never plain ws");
        assert!(!trusted_resume_url(&real, "wss://evil.example"));
        assert!(!trusted_resume_url(&real, "wss://discord.gg.evil.example"));
        assert!(!trusted_resume_url(&real, "wss://evildiscord.gg"));
        assert!(!trusted_resume_url(&real, "not a url"));
        // A local fake: its own host only.
        let fake = discord("http://127.0.0.1:4000/api/v10");
        assert!(trusted_resume_url(&fake, "ws://127.0.0.1:4001"));
        assert!(!trusted_resume_url(&fake, "ws://10.0.0.1:4001"));
    }
}
