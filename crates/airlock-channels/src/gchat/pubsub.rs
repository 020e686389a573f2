//! Cloud Pub/Sub pull, for apps without a public URL: Chat publishes each interaction event to
//! a topic, and this reader pulls the app's subscription (`POST {subscription}:pull`) as the
//! same service account. A batch is acknowledged (`:acknowledge`) only after the hub applied
//! each of its clicks (every click's [`crate::Done`] guard dropped): a reader that stops or
//! dies before that leaves them unacknowledged, and Pub/Sub delivers them again — to the replica
//! that reads next (the hub counts a person's vote once, so a repeat is harmless).
//!
//! Events pulled here are not signed per message: their authenticity is the subscription's
//! (only Chat's service account may publish to the topic; only ours may pull).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::Method;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::Gchat;
use super::verify::click;
use crate::{ChannelError, Click};

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Pause after an empty pull (Pub/Sub may answer an empty pull at once).
const IDLE: Duration = Duration::from_millis(200);
const BATCH: u32 = 20;

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A pulled message's event as a click, if it is one.
fn click_of(message: &Value) -> Option<Click> {
    let data = message["message"]["data"].as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    let event: Value = serde_json::from_slice(&raw).ok()?;
    let mut click = click(&event)?;
    click.ack["pubsub"] = json!(true);
    Some(click)
}

impl Gchat {
    pub(super) async fn pull(
        self: Arc<Self>,
        subscription: String,
        clicks: mpsc::Sender<Click>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let pull_url = format!("{}/{subscription}:pull", self.pubsub);
        let ack_url = format!("{}/{subscription}:acknowledge", self.pubsub);
        let mut backoff = BACKOFF_MIN;
        'pull: loop {
            if *shutdown.borrow() {
                break;
            }
            let body = json!({"maxMessages": BATCH});
            let result = tokio::select! {
                r = self.api.call(Method::POST, "pull", &pull_url, Some(&body)) => r,
                _ = stopped(&mut shutdown) => break,
            };
            let messages = match result {
                Ok(v) => {
                    backoff = BACKOFF_MIN;
                    v["receivedMessages"].as_array().cloned().unwrap_or_default()
                }
                Err(e) => {
                    let wait = match &e {
                        ChannelError::RateLimited { retry_after_secs, .. } => {
                            backoff.max(Duration::from_secs(*retry_after_secs))
                        }
                        _ => backoff,
                    };
                    tracing::warn!(error = %e, retry_in = ?wait, "gchat: Pub/Sub pull failed");
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = stopped(&mut shutdown) => break,
                    }
                }
            };
            if messages.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE) => continue,
                    _ = stopped(&mut shutdown) => break,
                }
            }
            let (guard, mut applied) = crate::Done::pair();
            let mut ack_ids = Vec::new();
            for m in &messages {
                if let Some(mut click) = click_of(m) {
                    click.done = guard.clone();
                    let handed = tokio::select! {
                        r = clicks.send(click) => r.is_ok(),
                        _ = stopped(&mut shutdown) => break 'pull,
                    };
                    if !handed {
                        break 'pull;
                    }
                }
                if let Some(id) = m["ackId"].as_str() {
                    ack_ids.push(id.to_string());
                }
            }
            drop(guard);
            tokio::select! {
                _ = applied.recv() => {}
                _ = stopped(&mut shutdown) => break,
            }
            let body = json!({"ackIds": ack_ids});
            if let Err(e) = self.api.call(Method::POST, "acknowledge", &ack_url, Some(&body)).await {
                tracing::warn!(error = %e, "gchat: Pub/Sub acknowledge failed; the events will be delivered again");
            }
        }
    }
}
