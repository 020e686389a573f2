//! Votes: from a known person (dashboard, terminal) or a platform click (token → approval,
//! platform identity → person → role), applied through the core state machine.

use airlock_channels::token::{Claims, Decision};
use airlock_channels::{Click, Reply, Status};
use airlock_core::approval::{Step, Vote};
use airlock_store::VoteRow;

use crate::{Applied, Counted, Hub, VoteError, event, now_ms};

impl Hub {
    /// A vote from a known person (dashboard, CLI, or a verified click).
    pub async fn vote(&self, id: &str, person: &str, decision: Decision, channel: &str) -> Result<Counted, VoteError> {
        let roles = self
            .inner
            .people
            .get(person)
            .map(|p| p.roles.clone())
            .ok_or_else(|| VoteError::NotAPerson(person.to_string()))?;
        let now = now_ms();
        let step = match self.apply_vote(id, person, roles, decision, channel, now) {
            Applied::NotLive => return Err(self.not_live(id).await),
            Applied::Error(e) => return Err(e),
            Applied::Step(s) => s,
        };
        let (agent, host) = self.agent_host(id);
        let step = match step {
            Ok(s) => s,
            Err(refused) => {
                self.audit(event(
                    "vote",
                    &agent,
                    &host,
                    "refused",
                    &format!("{person} via {channel}: {}", refused.reason()),
                    serde_json::json!({ "approval": id, "person": person, "channel": channel }),
                ));
                return Err(VoteError::Refused(refused));
            }
        };
        let vote_row = VoteRow {
            approval_id: id.to_string(),
            person: person.to_string(),
            approve: decision != Decision::Deny,
            channel: channel.to_string(),
            at_ms: now as i64,
        };
        let recorded = self.inner.store.add_vote(&vote_row).await;
        self.audit(event(
            "vote",
            &agent,
            &host,
            match decision {
                Decision::Approve => "approve",
                Decision::Deny => "deny",
                Decision::Grant => "grant",
            },
            &format!("{person} voted via {channel}"),
            serde_json::json!({ "approval": id, "person": person, "channel": channel, "at_ms": now }),
        ));
        match step {
            Step::Waiting(p) => {
                let approved_by: Vec<String> = p.approvers().iter().map(|s| s.to_string()).collect();
                if let Err(e) = recorded {
                    // The vote is not durable: fail closed rather than count it.
                    self.fail(id, format!("a vote could not be recorded: {e}")).await;
                    return Err(VoteError::Store(e.to_string()));
                }
                self.emit(
                    id,
                    &Status::Pending {
                        approved_by: approved_by.clone(),
                    },
                );
                Ok(Counted {
                    id: id.to_string(),
                    state: "pending".into(),
                    approved_by,
                })
            }
            Step::Decided(closed) => {
                let failure = recorded.err().map(|e| format!("a vote could not be recorded: {e}"));
                let approved_by = closed.pending.approvers().iter().map(|s| s.to_string()).collect();
                let state = self.finish(id, closed, failure).await;
                Ok(Counted {
                    id: id.to_string(),
                    state,
                    approved_by,
                })
            }
        }
    }

    /// A click from a platform: token → approval, platform identity → person → vote.
    pub async fn click(&self, click: &Click) -> Reply {
        let refuse = |text: &str| Reply {
            ok: false,
            text: text.to_string(),
        };
        let Ok(claims) = Claims::parse(&click.token) else {
            return refuse("This button is not valid.");
        };
        let Some(person) = self.inner.people.by_identity(click.channel, &click.user) else {
            self.audit(event(
                "vote",
                "",
                "",
                "refused",
                &format!("unknown {} user {} clicked", click.channel, click.user),
                serde_json::json!({ "approval": claims.id, "channel": click.channel, "user": click.user }),
            ));
            return refuse("You are not configured as an approver in airlock, so your click changed nothing.");
        };
        let digest = match self.digest_of(&claims.id).await {
            Some(d) => d,
            None => return refuse("This request is unknown to airlock."),
        };
        if let Err(e) = claims.verify(&self.inner.key, &digest, now_ms() / 1000) {
            return refuse(&format!("This button was refused: {e}."));
        }
        match self.vote(&claims.id, &person, claims.decision, click.channel).await {
            Ok(c) => Reply {
                ok: true,
                text: match c.state.as_str() {
                    "pending" => format!(
                        "Your vote counted ({} so far); waiting for more approvals.",
                        c.approved_by.len()
                    ),
                    s => format!("Your vote counted: the request is {s}."),
                },
            },
            Err(e) => refuse(&format!("Your click changed nothing: {e}.")),
        }
    }

    /// The in-memory half of a vote, under the lock (no await in here).
    pub(crate) fn apply_vote(
        &self,
        id: &str,
        person: &str,
        roles: Vec<String>,
        decision: Decision,
        channel: &str,
        now: u64,
    ) -> Applied {
        let Ok(mut map) = self.inner.live.lock() else {
            return Applied::Error(VoteError::Store("hub state poisoned".into()));
        };
        let Some(live) = map.get_mut(id) else {
            return Applied::NotLive;
        };
        let Some(pending) = live.pending.take() else {
            return Applied::Error(VoteError::Closed(live.status.name().into()));
        };
        if decision == Decision::Grant && live.card.grant_secs.is_none() {
            live.pending = Some(pending);
            return Applied::Error(VoteError::NoGrant);
        }
        let vote = Vote {
            person: person.to_string(),
            roles,
            approve: decision != Decision::Deny,
            channel: channel.to_string(),
            at_ms: now,
        };
        match pending.vote(vote) {
            Err((p, refused)) => {
                live.pending = Some(p);
                Applied::Step(Err(refused))
            }
            Ok(step) => {
                if decision == Decision::Grant {
                    live.granting.insert(person.to_string());
                }
                // Still waiting: the approval stays open for concurrent votes and expiry
                // while this vote is being recorded.
                if let Step::Waiting(p) = &step {
                    live.pending = Some(p.clone());
                    live.set_status(Status::Pending {
                        approved_by: p.approvers().iter().map(|s| s.to_string()).collect(),
                    });
                }
                Applied::Step(Ok(step))
            }
        }
    }

    async fn digest_of(&self, id: &str) -> Option<String> {
        if let Some(d) = self.with_live(id, |l| l.card.digest.clone()) {
            return Some(d);
        }
        self.inner.store.get_approval(id).await.ok().flatten().map(|r| r.digest)
    }

    async fn not_live(&self, id: &str) -> VoteError {
        match self.inner.store.get_approval(id).await {
            Ok(Some(row)) if row.state != "pending" => VoteError::Closed(row.state),
            // Pending in the store but not held here: another (dead) process held it.
            Ok(Some(_)) => VoteError::Closed("held by another gateway".into()),
            Ok(None) => VoteError::Unknown(id.to_string()),
            Err(e) => VoteError::Store(e.to_string()),
        }
    }
}
