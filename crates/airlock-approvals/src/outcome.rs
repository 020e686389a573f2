//! Outcomes: expiry, withdrawal and the hub's own refusals close the stored approval once (any
//! replica may race them: only the update that moves the row out of "pending" counts); the
//! holding replica then reads the closed row and hands its waiter the verdict, updates the
//! cards and retires the approval.

use airlock_channels::{Card, Status};
use airlock_core::audit::AuditEvent;
use airlock_store::{ApprovalRow, StoreError};

use crate::{Hub, Verdict, fanout, now_ms, view};

/// The verdict a closed status gives the waiting request. Only `Approved` forwards.
fn verdict_of(status: &Status) -> Verdict {
    match status {
        Status::Approved { by, .. } => Verdict::Approved { by: by.clone() },
        Status::Denied { by, .. } => Verdict::Denied { by: by.clone() },
        Status::Expired { .. } => Verdict::Expired,
        Status::Withdrawn { .. } => Verdict::Failed {
            reason: "the agent disconnected".into(),
        },
        Status::Abandoned { .. } => Verdict::Failed {
            reason: "the approval was abandoned".into(),
        },
        Status::Failed { reason, .. } => Verdict::Failed { reason: reason.clone() },
        Status::Pending { .. } => Verdict::Failed {
            reason: "the approval is still pending".into(),
        },
    }
}

/// The final status stored with a closed row (a row without a readable one is a refusal).
fn stored_status(row: &ApprovalRow) -> Status {
    let at_ms = row.decided_ms.unwrap_or(row.created_ms) as u64;
    match row
        .status
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Status>(b).ok())
    {
        Some(s) if !s.is_open() => s,
        _ => Status::Failed {
            reason: format!("the approval was closed as {} without a readable status", row.state),
            at_ms,
        },
    }
}

impl Hub {
    /// Closes approval `id` with `status` unless it was decided already; the closer records the
    /// outcome. `Ok(false)`: someone else decided first.
    pub(crate) async fn close_as(&self, id: &str, status: Status, card: &Card) -> Result<bool, StoreError> {
        let at_ms = now_ms() as i64;
        let json = serde_json::to_vec(&status).unwrap_or_default();
        let closed = self.inner.store.close_approval(id, status.name(), at_ms, &json).await?;
        if closed {
            self.audit(event(
                "approval",
                &card.agent,
                &card.host,
                status.name(),
                &view::status_text(&status),
                serde_json::json!({ "approval": id, "digest": card.digest }),
            ));
        }
        Ok(closed)
    }

    /// Closes a held approval (expiry, withdrawal, refusal), then applies whatever decision
    /// the store holds. When the store cannot be written, the waiter still gets `fallback`:
    /// a request is never forwarded on an outcome that was not recorded.
    async fn close_held(&self, id: &str, status: Status, fallback: Verdict) {
        let Some(card) = self.with_live(id, |l| l.card.clone()) else {
            return;
        };
        match self.close_as(id, status.clone(), &card).await {
            // Whoever closed it, the stored outcome is what applies; `release` below is a
            // no-op once it did.
            Ok(_) => {
                if let Err(e) = self.refresh(id).await {
                    tracing::warn!(approval = id, error = %e, "could not read the outcome of an approval");
                }
                self.release(id, status, fallback);
            }
            Err(e) => {
                tracing::warn!(approval = id, error = %e, "could not record the end of an approval");
                let reason = "the outcome could not be recorded".to_string();
                let at_ms = now_ms();
                self.release(id, Status::Failed { reason, at_ms }, fallback);
            }
        }
    }

    /// The deadline passed (called by the waiting ticket).
    pub(crate) async fn expire(&self, id: &str) {
        let at_ms = now_ms();
        self.close_held(id, Status::Expired { at_ms }, Verdict::Expired).await;
    }

    /// The agent went away before a decision: nothing will be forwarded.
    pub(crate) async fn withdraw(&self, id: &str) {
        let at_ms = now_ms();
        let reason = "the agent disconnected".to_string();
        self.close_held(id, Status::Withdrawn { at_ms }, Verdict::Failed { reason })
            .await;
    }

    /// This gateway is stopping while the approval is held: it is closed as abandoned (never
    /// forwarded, cards updated), unless it was decided first — then that decision applies.
    pub(crate) async fn abandon(&self, id: &str) {
        let at_ms = now_ms();
        let reason = "the approval was abandoned: the gateway is stopping".to_string();
        self.close_held(id, Status::Abandoned { at_ms }, Verdict::Failed { reason })
            .await;
    }

    /// Refuses a held approval for a reason of the hub's own (fail closed).
    pub(crate) async fn fail(&self, id: &str, reason: String) {
        let at_ms = now_ms();
        let status = Status::Failed {
            reason: reason.clone(),
            at_ms,
        };
        self.close_held(id, status, Verdict::Failed { reason }).await;
    }

    /// Approval `id` changed in the store (a vote here, or a notification from another
    /// replica): the holder brings its waiter and cards up to date; every replica tells its
    /// dashboards.
    pub(crate) async fn changed(&self, id: &str) {
        match self.with_live(id, |l| l.closed) {
            // Held here and its outcome already applied: nothing left to read.
            Some(true) => return,
            Some(false) => {
                if let Err(e) = self.refresh(id).await {
                    // The polling fallback retries.
                    tracing::warn!(approval = id, error = %e, "could not read an approval's change");
                }
                return;
            }
            None => {}
        }
        // Only dashboards follow other replicas' approvals: no reader, no query.
        if self.inner.events.receiver_count() == 0 {
            return;
        }
        if let Ok(Some(row)) = self.inner.store.get_approval(id).await {
            self.announce(id, &row.state);
        }
    }

    /// Reads held approval `id` from the store and applies it: progress to the cards, or the
    /// final status to the waiter (once), the cards and the dashboards.
    pub(crate) async fn refresh(&self, id: &str) -> Result<(), StoreError> {
        let Some(row) = self.inner.store.get_approval(id).await? else {
            return Ok(());
        };
        if row.state == "pending" {
            let votes = self.inner.store.votes(id).await?;
            let approved_by: Vec<String> = votes.into_iter().filter(|v| v.approve).map(|v| v.person).collect();
            let moved = self.with_live(id, |l| match &l.status {
                // Votes only accumulate: an older read arriving late never rolls the card back.
                Status::Pending { approved_by: had } if had.len() < approved_by.len() => {
                    l.set_status(Status::Pending { approved_by });
                    Some(l.status.clone())
                }
                _ => None,
            });
            if let Some(Some(status)) = moved {
                self.emit(id, &status);
            }
            return Ok(());
        }
        let status = stored_status(&row);
        let verdict = verdict_of(&status);
        self.release(id, status, verdict);
        Ok(())
    }

    /// Hands the waiter its verdict (if it is still waiting), shows `status` on the cards and
    /// dashboards, and retires the approval.
    fn release(&self, id: &str, status: Status, verdict: Verdict) {
        let first = self.with_live(id, |l| {
            if l.closed {
                return false;
            }
            l.closed = true;
            l.set_status(status.clone());
            if let Some(w) = l.waiter.take() {
                let _ = w.send(verdict);
            }
            true
        });
        if first == Some(true) {
            self.emit(id, &status);
            fanout::retire(self, id);
        }
    }
}

pub(crate) fn event(
    kind: &str,
    agent: &str,
    host: &str,
    decision: &str,
    reason: &str,
    detail: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        ts_ms: now_ms(),
        kind: kind.into(),
        agent: (!agent.is_empty()).then(|| agent.to_string()),
        method: None,
        host: (!host.is_empty()).then(|| host.to_string()),
        path: None,
        rules: vec![],
        decision: decision.into(),
        reason: reason.into(),
        secrets: vec![],
        status: None,
        bytes_in: 0,
        bytes_out: 0,
        latency_us: 0,
        detail: Some(detail),
    }
}

impl Hub {
    /// After a policy reload: refuses each approval this replica holds whose every rule is
    /// gone from the new policy or now denies (`kept(rule)` says whether a rule still holds),
    /// closing its cards with that reason. Returns the ids refused. Anything else stays held,
    /// its cards, votes and grants unchanged.
    pub async fn recheck(&self, kept: impl Fn(&str) -> bool) -> Vec<String> {
        let open: Vec<(String, Vec<String>)> = match self.inner.live.lock() {
            Ok(map) => map
                .iter()
                .filter(|(_, l)| !l.closed && l.status.is_open())
                .map(|(id, l)| (id.clone(), l.card.rules.iter().map(|r| r.name.clone()).collect()))
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut refused = Vec::new();
        for (id, rules) in open {
            if rules.iter().any(|r| kept(r)) {
                continue;
            }
            let reason = format!(
                "the policy was reloaded and no longer holds this request for approval (rule {} removed or now denies)",
                rules.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ")
            );
            self.fail(&id, reason).await;
            refused.push(id);
        }
        refused
    }
}
