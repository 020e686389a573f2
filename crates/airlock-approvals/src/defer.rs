//! Defer mode (`on_hold = "defer"`): the agent is answered at once and retries; the approval
//! lives on (cards, votes, expiry) without the agent's connection, and once approved the
//! identical request — same agent, same digest — passes once within the rule's window. The
//! deferral and its single pass are in the store, so every replica sharing it agrees.

use crate::{HoldRequest, Hub, HubError, now_ms};

/// What an agent's retry of a deferred request meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// No live deferral of this request: hold it anew.
    Fresh,
    /// Still waiting for people: answer 428 again with the same approval.
    Pending { id: String },
    /// Approved, and this request took the one pass: forward it.
    Pass { id: String },
    /// Denied, expired, withdrawn or abandoned within the window: refuse it.
    Refused { id: String, state: String },
}

impl Hub {
    /// Looks up the newest deferral of `agent`'s request with `digest`; an approved one is
    /// passed here (atomically, once). A decision older than `window_secs` is forgotten.
    pub async fn deferred(&self, agent: &str, digest: &str, window_secs: u64) -> Result<Deferred, HubError> {
        let Some(d) = self.inner.store.defer_latest(agent, digest).await? else {
            return Ok(Deferred::Fresh);
        };
        let now = now_ms() as i64;
        let recent = d
            .decided_ms
            .is_some_and(|at| now < at.saturating_add(window_secs.saturating_mul(1000) as i64));
        Ok(match d.state.as_str() {
            "pending" => Deferred::Pending { id: d.approval_id },
            "approved" if recent => {
                if self.inner.store.defer_pass(&d.approval_id, now).await? {
                    Deferred::Pass { id: d.approval_id }
                } else {
                    Deferred::Fresh
                }
            }
            _ if recent && d.state != "approved" => Deferred::Refused {
                id: d.approval_id,
                state: d.state,
            },
            _ => Deferred::Fresh,
        })
    }

    /// Holds `req` without a waiting agent: persists it, sends its cards, records the deferral
    /// and lets the approval run to its verdict (or expiry) in the background, keeping `slot`
    /// (the caller's count of the agent's open approvals) until then. Returns its id.
    pub async fn defer<S: Send + 'static>(&self, req: HoldRequest, slot: S) -> Result<String, HubError> {
        let agent = req.held.agent.clone();
        let digest = airlock_channels::card::digest(&req.held);
        let ticket = self.hold(req).await?;
        let id = ticket.id().to_string();
        // Dropping the ticket on error withdraws the approval: no deferral, no pass.
        self.inner
            .store
            .defer_add(&id, &agent, &digest, now_ms() as i64)
            .await?;
        tokio::spawn(async move {
            // The verdict is recorded by the hub; the retry reads it from the store.
            let _ = ticket.wait().await;
            drop(slot);
        });
        Ok(id)
    }

    /// The state of approval `id` if `agent` created it; `None` for an unknown approval or
    /// another agent's (the two are indistinguishable to the caller).
    pub async fn state_for_agent(&self, id: &str, agent: &str) -> Result<Option<String>, HubError> {
        let row = self.inner.store.get_approval(id).await?;
        Ok(row.filter(|r| r.agent == agent).map(|r| r.state))
    }
}
