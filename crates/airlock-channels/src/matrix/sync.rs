//! `/sync` long polling, on the replica holding the feed lock. The `since` token is stored
//! only once every vote of the batch it ends has been applied by the hub (each click's
//! [`crate::Done`] guard dropped): a reader that dies before that leaves the old token, and the
//! next reader (after a restart, or on another replica) reads the batch again — the hub counts
//! a person's vote once, so nothing is applied twice and nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::{mpsc, watch};

use super::{Matrix, NAME, verify};
use crate::memory::{get_json, put_json};
use crate::{ChannelError, Click};

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Only what can be a vote, and no presence, typing or account data.
const FILTER: &str = r#"{"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]},"room":{"timeline":{"limit":50,"types":["m.reaction","m.room.message"]},"state":{"lazy_load_members":true,"types":[]},"ephemeral":{"not_types":["*"]},"account_data":{"not_types":["*"]}}}"#;

fn since_key() -> String {
    format!("{NAME}/since")
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl Matrix {
    async fn sync(&self, since: Option<&str>) -> Result<serde_json::Value, ChannelError> {
        let mut q = format!(
            "/sync?timeout={}&filter={}",
            self.poll_timeout.as_millis(),
            utf8_percent_encode(FILTER, NON_ALPHANUMERIC)
        );
        if let Some(s) = since {
            q.push_str(&format!("&since={}", utf8_percent_encode(s, NON_ALPHANUMERIC)));
        }
        self.api
            .call(
                Method::GET,
                "sync",
                &q,
                None,
                self.poll_timeout + Duration::from_secs(30),
            )
            .await
    }

    pub(super) async fn read(self: Arc<Self>, clicks: mpsc::Sender<Click>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut since: Option<String> = None;
        let mut loaded = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let step = async {
                let bot = self.bot().await?.to_string();
                if !loaded {
                    since = get_json(&*self.memory, &since_key())
                        .await
                        .map_err(|e| super::platform(format!("the store: {e}")))?;
                    loaded = true;
                }
                let v = self.sync(since.as_deref()).await?;
                Ok::<_, ChannelError>((bot, v))
            };
            let (bot, v) = tokio::select! {
                r = step => match r {
                    Ok(ok) => ok,
                    Err(e) => {
                        let wait = match &e {
                            ChannelError::RateLimited { retry_after_secs, .. } => {
                                backoff.max(Duration::from_secs(*retry_after_secs))
                            }
                            _ => backoff,
                        };
                        tracing::warn!(error = %e, retry_in = ?wait, "matrix: sync failed");
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => continue,
                            _ = stopped(&mut shutdown) => return,
                        }
                    }
                },
                _ = stopped(&mut shutdown) => return,
            };
            backoff = BACKOFF_MIN;
            let (votes, next) = verify::votes(&v, &bot);
            let Some(next) = next else {
                tracing::warn!("matrix: a sync answer without next_batch");
                continue;
            };
            let mut batch = Vec::new();
            let mut failed = None;
            for vote in votes {
                match self.click_for(vote).await {
                    Ok(Some(click)) => batch.push(click),
                    Ok(None) => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                // The store cannot be read: keep the old position, read the batch again.
                tracing::warn!(error = %e, "matrix: a vote could not be read; the batch will be read again");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut shutdown) => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            let (guard, mut applied) = crate::Done::pair();
            for mut click in batch {
                click.done = guard.clone();
                let handed = tokio::select! {
                    r = clicks.send(click) => r.is_ok(),
                    _ = stopped(&mut shutdown) => return,
                };
                if !handed {
                    return;
                }
            }
            drop(guard);
            tokio::select! {
                _ = applied.recv() => {}
                _ = stopped(&mut shutdown) => return,
            }
            if let Err(e) = put_json(&*self.memory, &since_key(), &next).await {
                tracing::warn!(error = %e, "matrix: the sync position was not stored; a restart reads these votes again");
            }
            since = Some(next);
        }
    }
}
