//! What the gateway waits on. The waiting future itself enforces the deadline, so a held
//! request costs no timer task; dropping it (the agent disconnected) withdraws the approval.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::{Hub, Verdict, now_ms};

pub struct Ticket {
    hub: Hub,
    id: String,
    expires_ms: u64,
    rx: Option<oneshot::Receiver<Verdict>>,
    done: bool,
}

impl Ticket {
    pub(crate) fn new(hub: Hub, id: String, expires_ms: u64, rx: oneshot::Receiver<Verdict>) -> Ticket {
        Ticket {
            hub,
            id,
            expires_ms,
            rx: Some(rx),
            done: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the verdict; at the deadline the approval expires (deny).
    pub async fn wait(self) -> Verdict {
        self.wait_until(std::future::pending()).await
    }

    /// [`wait`](Self::wait), unless `stop` completes first (the gateway is stopping): then the
    /// approval is abandoned — never forwarded — and the verdict is `Failed`, or the decision
    /// that was recorded before the abandonment.
    pub async fn wait_until(mut self, stop: impl std::future::Future<Output = ()>) -> Verdict {
        let Some(mut rx) = self.rx.take() else {
            self.done = true;
            return Verdict::Failed {
                reason: "the approval is no longer held".into(),
            };
        };
        tokio::pin!(stop);
        loop {
            let left = self.expires_ms.saturating_sub(now_ms());
            tokio::select! {
                () = &mut stop => {
                    // Records the abandonment, or delivers the decision that came first.
                    self.hub.abandon(&self.id).await;
                    self.done = true;
                    return rx.try_recv().unwrap_or(Verdict::Failed {
                        reason: "the approval was abandoned: the gateway is stopping".into(),
                    });
                }
                v = &mut rx => {
                    self.done = true;
                    return v.unwrap_or(Verdict::Failed { reason: "the approvals hub stopped".into() });
                }
                _ = tokio::time::sleep(Duration::from_millis(left.max(1))) => {
                    if now_ms() < self.expires_ms {
                        continue;
                    }
                    // Records the expiry, or delivers the decision that came first.
                    self.hub.expire(&self.id).await;
                    self.done = true;
                    // Past the deadline, nothing arrives later: whatever the store said, a
                    // verdict not here now is no approval.
                    return rx.try_recv().unwrap_or(Verdict::Expired);
                }
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // `wait` never returned a verdict: the agent left (a no-op if it was decided meanwhile).
        if !self.done {
            let (hub, id) = (self.hub.clone(), self.id.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { hub.withdraw(&id).await });
            }
        }
    }
}
