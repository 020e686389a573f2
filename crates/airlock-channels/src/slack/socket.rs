//! Socket Mode: `apps.connections.open` (app token) gives a one-off WebSocket URL; Slack
//! sends `hello`, then envelopes, each acknowledged with `{"envelope_id": …}`, and
//! `disconnect` when it wants the app to reconnect through a fresh URL.
//!
//! Logs name envelope types and ids only: never tokens, URLs (they carry a ticket) or payloads.

use std::sync::Arc;
use std::time::Duration;

use airlock_vault::SecretBytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::{Slack, click_from_payload};
use crate::{ChannelError, Click};

/// Interaction payloads repeat the whole message (blocks included): room for that, no more.
const MAX_MESSAGE: usize = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before reconnecting after a healthy session ended (a refresh): keeps a server that
/// says hello and hangs up at once from turning this into a busy loop.
const AFTER_HEALTHY: Duration = Duration::from_millis(200);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

enum End {
    Shutdown,
    /// Nobody takes clicks any more.
    ClicksClosed,
    Reconnect {
        /// The session got as far as `hello`.
        healthy: bool,
        retry_after: Option<Duration>,
    },
}

/// Capped exponential backoff after `failures` consecutive failed sessions (≥ 1).
pub(crate) fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_START.saturating_mul(1 << exp).min(BACKOFF_CAP)
}

/// Resolves when `shutdown` turns true, or when its sender is gone (no owner left to stop us).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Platform strings in log lines: printable ASCII, bounded.
fn loggable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

fn tls() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // An explicit provider: no dependence on a process-wide default being installed.
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Describes a connect error without its URL.
fn describe(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => format!("io: {}", io.kind()),
        tungstenite::Error::Http(resp) => format!("HTTP {}", resp.status().as_u16()),
        tungstenite::Error::Tls(_) => "TLS handshake failed".to_string(),
        tungstenite::Error::Url(_) => "unusable socket URL".to_string(),
        _ => "WebSocket protocol error".to_string(),
    }
}

pub(crate) async fn run(
    slack: Arc<Slack>,
    app_token: SecretBytes,
    clicks: mpsc::Sender<Click>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match tls() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "slack socket: TLS setup failed; Socket Mode not started");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let delay = match session(&slack, &app_token, &tls, &clicks, &mut shutdown).await {
            End::Shutdown => return,
            End::ClicksClosed => {
                tracing::info!("slack socket: click receiver closed; stopping");
                return;
            }
            End::Reconnect { healthy: true, .. } => {
                failures = 0;
                AFTER_HEALTHY
            }
            End::Reconnect {
                healthy: false,
                retry_after,
            } => {
                failures = failures.saturating_add(1);
                backoff(failures).max(retry_after.unwrap_or_default())
            }
        };
        tracing::debug!(delay_ms = delay.as_millis() as u64, "slack socket: reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

async fn session(
    slack: &Slack,
    app_token: &SecretBytes,
    tls: &Arc<rustls::ClientConfig>,
    clicks: &mpsc::Sender<Click>,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let failed = End::Reconnect {
        healthy: false,
        retry_after: None,
    };
    let opened = tokio::select! {
        r = slack.api.call_with("apps.connections.open", app_token, None) => r,
        _ = stopped(shutdown) => return End::Shutdown,
    };
    let url = match opened {
        Ok(v) => match v["url"].as_str() {
            Some(u) if slack.api.allows_socket_url(u) => u.to_string(),
            _ => {
                tracing::warn!("slack socket: apps.connections.open gave no usable url");
                return failed;
            }
        },
        Err(ChannelError::RateLimited { retry_after_secs, .. }) => {
            return End::Reconnect {
                healthy: false,
                retry_after: Some(Duration::from_secs(retry_after_secs)),
            };
        }
        Err(e) => {
            tracing::warn!(error = %e, "slack socket: cannot open a connection");
            return failed;
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connect = connect_async_tls_with_config(url, Some(config), true, Some(Connector::Rustls(tls.clone())));
    let mut ws = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connect) => match r {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                tracing::warn!(error = %describe(&e), "slack socket: connect failed");
                return failed;
            }
            Err(_) => {
                tracing::warn!("slack socket: connect timed out");
                return failed;
            }
        },
        _ = stopped(shutdown) => return End::Shutdown,
    };

    let mut healthy = false;
    loop {
        let frame = tokio::select! {
            f = ws.next() => f,
            _ = stopped(shutdown) => {
                let _ = ws.close(None).await;
                return End::Shutdown;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            // tungstenite answers pings itself; binary frames are not part of Socket Mode.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => {
                tracing::info!("slack socket: connection closed");
                return End::Reconnect {
                    healthy,
                    retry_after: None,
                };
            }
            Some(Err(e)) => {
                tracing::warn!(error = %describe(&e), "slack socket: read failed");
                return End::Reconnect {
                    healthy,
                    retry_after: None,
                };
            }
        };
        let Ok(envelope) = serde_json::from_str::<Value>(text.as_str()) else {
            tracing::warn!("slack socket: frame is not JSON; ignored");
            continue;
        };
        let kind = loggable(envelope["type"].as_str().unwrap_or("none"));
        let id = envelope["envelope_id"].as_str();
        if let Some(id) = id {
            // Acknowledge before anything else: Slack redelivers envelopes it has not seen
            // acknowledged within a few seconds, and processing may wait on the hub.
            let ack = json!({"envelope_id": id}).to_string();
            if let Err(e) = ws.send(Message::text(ack)).await {
                tracing::warn!(error = %describe(&e), "slack socket: ack failed");
                return End::Reconnect {
                    healthy,
                    retry_after: None,
                };
            }
        }
        let id = loggable(id.unwrap_or("-"));
        tracing::debug!(kind = %kind, envelope_id = %id, "slack socket: envelope");
        match kind.as_str() {
            "hello" => {
                healthy = true;
                tracing::info!("slack socket: connected");
            }
            "disconnect" => {
                let reason = loggable(envelope["reason"].as_str().unwrap_or("-"));
                tracing::info!(reason = %reason, "slack socket: Slack asked to reconnect");
                let _ = ws.close(None).await;
                return End::Reconnect {
                    healthy: true,
                    retry_after: None,
                };
            }
            "interactive" => match click_from_payload(&envelope["payload"]) {
                Ok(Some(click)) => {
                    tokio::select! {
                        r = clicks.send(click) => if r.is_err() {
                            let _ = ws.close(None).await;
                            return End::ClicksClosed;
                        },
                        _ = stopped(shutdown) => {
                            let _ = ws.close(None).await;
                            return End::Shutdown;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(envelope_id = %id, error = %e, "slack socket: unusable interaction"),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(7), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }
}
