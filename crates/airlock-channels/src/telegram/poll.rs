//! getUpdates long polling, for deployments without a public webhook URL.
//!
//! Telegram forgets an update once getUpdates is called with a higher `offset`, so the call
//! that confirms a batch is made only after the hub has applied each of its clicks (every
//! click's [`crate::Done`] guard dropped): a shutdown or crash before that re-delivers the
//! click — to this process, or to the replica that reads the feed next — rather than losing it
//! (the hub counts a person's vote once, so a repeat is harmless). An update below the offset
//! already handed over is never handed over again, whatever the server sends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::{Telegram, click_from_update};
use crate::{ChannelError, Click};

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long the confirming call at shutdown may take before we give up on it.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves once shutdown is requested (or its sender is gone, which means the same).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl Telegram {
    fn get_updates_body(&self, offset: Option<i64>, timeout: u64, limit: u32) -> Value {
        let mut body = json!({
            "timeout": timeout,
            "limit": limit,
            "allowed_updates": ["callback_query"],
        });
        if let Some(offset) = offset {
            body["offset"] = offset.into();
        }
        body
    }

    pub(super) async fn poll(self: Arc<Self>, clicks: mpsc::Sender<Click>, mut shutdown: watch::Receiver<bool>) {
        // `None` asks for the earliest unconfirmed update: whatever a previous run left.
        let mut offset: Option<i64> = None;
        // The offset Telegram has last seen, i.e. what it has forgotten.
        let mut confirmed: Option<i64> = None;
        let mut backoff = BACKOFF_MIN;
        let call_timeout = super::CALL_TIMEOUT + Duration::from_secs(self.poll_timeout_secs);
        'poll: loop {
            if *shutdown.borrow() {
                break;
            }
            let body = self.get_updates_body(offset, self.poll_timeout_secs, 100);
            let result = tokio::select! {
                r = self.call("getUpdates", &body, call_timeout) => r,
                _ = stopped(&mut shutdown) => break,
            };
            let updates = match result {
                Ok(Value::Array(updates)) => {
                    confirmed = offset;
                    backoff = BACKOFF_MIN;
                    updates
                }
                other => {
                    let e = other
                        .err()
                        .unwrap_or_else(|| super::platform("getUpdates: result is not an array"));
                    // Doubling up to a minute, never sooner than a rate limit asks for.
                    let wait = match &e {
                        ChannelError::RateLimited { retry_after_secs, .. } => {
                            backoff.max(Duration::from_secs(*retry_after_secs))
                        }
                        _ => backoff,
                    };
                    tracing::warn!(error = %e, retry_in = ?wait, "telegram: getUpdates failed");
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = stopped(&mut shutdown) => break,
                    }
                }
            };
            // Clicks of this batch carry a guard; the next call (which confirms them) waits
            // until the hub has applied every one.
            let (guard, mut applied) = crate::Done::pair();
            for update in &updates {
                let Some(id) = update["update_id"].as_i64() else {
                    tracing::warn!("telegram: update without update_id skipped");
                    continue;
                };
                // Below the offset: handed over (and confirmed, or about to be) already. A
                // re-delivery would be a second vote attempt and a second answer to a spent
                // callback query id.
                if offset.is_some_and(|o| id < o) {
                    tracing::debug!(update_id = id, "telegram: update already handled, skipped");
                    continue;
                }
                match click_from_update(update) {
                    Ok(Some(mut click)) => {
                        click.done = guard.clone();
                        let handed = tokio::select! {
                            r = clicks.send(click) => r.is_ok(),
                            _ = stopped(&mut shutdown) => break 'poll,
                        };
                        if !handed {
                            tracing::info!("telegram: click receiver gone; polling stops");
                            break 'poll;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(update_id = id, error = %e, "telegram: malformed update skipped"),
                }
                offset = Some(offset.map_or(id + 1, |o| o.max(id + 1)));
            }
            drop(guard);
            tokio::select! {
                _ = applied.recv() => {}
                _ = stopped(&mut shutdown) => break,
            }
        }
        // Tell Telegram what was handed over, so a restart does not deliver it again.
        if offset.is_some() && offset != confirmed {
            let body = self.get_updates_body(offset, 0, 1);
            match tokio::time::timeout(CONFIRM_TIMEOUT, self.call("getUpdates", &body, CONFIRM_TIMEOUT)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "telegram: last updates not confirmed; may be delivered again")
                }
                Err(_) => tracing::warn!("telegram: last updates not confirmed in time; may be delivered again"),
            }
        }
    }
}
