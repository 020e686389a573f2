//! Outcomes: expiry, withdrawal, the hub's own refusals, and `finish`, which records an
//! outcome once and then releases the waiter, updates the cards and creates grants.

use airlock_channels::Status;
use airlock_core::approval::{Closed, Outcome};
use airlock_core::audit::AuditEvent;

use crate::{Hub, Verdict, fanout, grants, now_ms, view};

impl Hub {
    /// Expires the approval if its deadline has passed (called by the waiting ticket).
    pub(crate) async fn expire(&self, id: &str) {
        let now = now_ms();
        let closed = self.with_live(id, |l| match l.pending.take()?.expire(now) {
            Ok(c) => Some(c),
            Err(p) => {
                l.pending = Some(p);
                None
            }
        });
        if let Some(Some(c)) = closed {
            self.finish(id, c, None).await;
        }
    }

    /// The agent went away before a decision: nothing will be forwarded.
    pub(crate) async fn withdraw(&self, id: &str) {
        let now = now_ms();
        if let Some(Some(p)) = self.with_live(id, |l| l.pending.take()) {
            self.finish(id, p.abandon(now), Some(String::new())).await;
        }
    }

    /// Refuses a pending approval for a reason of the hub's own (fail closed).
    pub(crate) async fn fail(&self, id: &str, reason: String) {
        let now = now_ms();
        if let Some(Some(p)) = self.with_live(id, |l| l.pending.take()) {
            self.finish(id, p.abandon(now), Some(reason)).await;
        }
    }

    /// Applies a final outcome: recorded once in the store, then the waiter, the cards and
    /// the grants. `failure` turns any outcome into a refusal (`Some("")`: the agent left).
    pub(crate) async fn finish(&self, id: &str, closed: Closed, failure: Option<String>) -> String {
        let at_ms = closed.at_ms;
        let by: Vec<String> = closed.pending.approvers().iter().map(|s| s.to_string()).collect();
        let (mut status, mut verdict) = match closed.outcome {
            Outcome::Approved => {
                let grant_secs = self.with_live(id, |l| {
                    (!by.is_empty() && by.iter().all(|p| l.granting.contains(p))).then_some(l.card.grant_secs)?
                });
                (
                    Status::Approved {
                        by: by.clone(),
                        at_ms,
                        grant_secs: grant_secs.flatten(),
                    },
                    Verdict::Approved { by: by.clone() },
                )
            }
            Outcome::Denied => {
                let who = closed
                    .pending
                    .votes
                    .iter()
                    .find(|v| !v.approve)
                    .map(|v| v.person.clone())
                    .unwrap_or_default();
                (Status::Denied { by: who.clone(), at_ms }, Verdict::Denied { by: who })
            }
            Outcome::Expired => (Status::Expired { at_ms }, Verdict::Expired),
            Outcome::Abandoned => (
                Status::Withdrawn { at_ms },
                Verdict::Failed {
                    reason: "the agent disconnected".into(),
                },
            ),
        };
        match failure {
            Some(reason) if !reason.is_empty() => {
                status = Status::Failed {
                    reason: reason.clone(),
                    at_ms,
                };
                verdict = Verdict::Failed { reason };
            }
            _ => {}
        }
        let state = status.name();
        let json = serde_json::to_vec(&status).unwrap_or_default();
        // Exactly once: only the caller whose update moved the row out of "pending" acts.
        match self.inner.store.close_approval(id, state, at_ms as i64, &json).await {
            Ok(true) => {}
            Ok(false) => {
                verdict = Verdict::Failed {
                    reason: "the approval was closed elsewhere".into(),
                };
            }
            Err(e) => {
                verdict = Verdict::Failed {
                    reason: format!("the decision could not be recorded: {e}"),
                };
                status = Status::Failed {
                    reason: "the decision could not be recorded".into(),
                    at_ms,
                };
            }
        }
        if let Status::Approved {
            grant_secs: Some(secs), ..
        } = &status
            && matches!(verdict, Verdict::Approved { .. })
        {
            grants::create(self, id, &by, *secs, at_ms).await;
        }
        let parts = self.with_live(id, |l| {
            l.set_status(status.clone());
            l.closed = true;
            (l.waiter.take(), l.card.clone())
        });
        if let Some((waiter, card)) = parts {
            if let Some(w) = waiter {
                let _ = w.send(verdict);
            }
            self.audit(event(
                "approval",
                &card.agent,
                &card.host,
                state,
                &view::status_text(&status),
                serde_json::json!({ "approval": id, "digest": card.digest }),
            ));
            fanout::retire(self, id);
        }
        self.emit(id, &status);
        state.to_string()
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
