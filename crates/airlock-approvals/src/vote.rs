//! Votes: from a known person (dashboard, terminal) or a platform click (token → approval,
//! platform identity → person → role). Counted by whichever replica receives them, in one store
//! transaction under the approval's lock, through the core state machine.

use airlock_channels::token::{self, Claims, Decision};
use airlock_channels::{Card, Click, Reply, Status};
use airlock_core::approval::{Closed, Outcome, Pending, Refused, Requirement, Step, Vote};
use airlock_store::{ApprovalRow, StoreError, Tally, VoteRow};

use crate::{Counted, Hub, People, VoteError, event, grants, now_ms, view};

/// What a vote that was counted did.
enum Effect {
    /// Still pending; approved so far by these people.
    Waiting(Vec<String>),
    /// Decided: the final status, and the card (for grants).
    Decided(Status, Box<Card>),
}

impl Hub {
    /// A vote from a known person (dashboard, CLI, or a verified click), on any replica.
    pub async fn vote(&self, id: &str, person: &str, decision: Decision, channel: &str) -> Result<Counted, VoteError> {
        if self.inner.people.get(person).is_none() {
            return Err(VoteError::NotAPerson(person.to_string()));
        }
        let now = now_ms();
        let row = VoteRow {
            approval_id: id.to_string(),
            person: person.to_string(),
            approve: decision != Decision::Deny,
            grant: decision == Decision::Grant,
            channel: channel.to_string(),
            at_ms: now as i64,
        };
        let people = &self.inner.people;
        let what = Voted {
            id,
            person,
            channel,
            decision,
            at_ms: now,
        };
        // The vote's records commit in the vote's own transaction: once it is counted (and the
        // approval perhaps closed, for its holder to forward), they are in the chain.
        let counted = self
            .inner
            .store
            .count_vote_audited(&row, |approval, earlier| {
                let t = tally(approval, earlier, &row, people);
                let records = what.records(&t);
                (t, records)
            })
            .await;
        let (tally, agent, host) = match counted {
            Ok(Some(Tally::Refuse(c) | Tally::Record(c) | Tally::Close { then: c, .. })) => c,
            Ok(None) => return Err(VoteError::Unknown(id.to_string())),
            // The same person voting at the same instant on two replicas: the key refused one.
            Err(StoreError::AlreadyExists { .. }) => return Err(VoteError::Refused(Refused::AlreadyVoted)),
            Err(e) => return Err(VoteError::Store(e.to_string())),
        };
        let effect = match tally {
            Err(e) => {
                if let VoteError::Refused(r) = &e {
                    // Recorded before the voter is told: a refusal is evidence too.
                    self.audit_durable(event(
                        "vote",
                        &agent,
                        &host,
                        "refused",
                        &format!("{person} via {channel}: {}", r.reason()),
                        serde_json::json!({ "approval": id, "person": person, "channel": channel }),
                    ))
                    .await;
                }
                return Err(e);
            }
            Ok(effect) => effect,
        };
        let counted = match effect {
            Effect::Waiting(approved_by) => Counted {
                id: id.to_string(),
                state: "pending".into(),
                approved_by,
            },
            Effect::Decided(status, card) => {
                let approved_by = match &status {
                    Status::Approved { by, grant_secs, at_ms } => {
                        if let Some(secs) = grant_secs {
                            grants::create(self, &card, by, *secs, *at_ms).await;
                        }
                        by.clone()
                    }
                    _ => Vec::new(),
                };
                Counted {
                    id: id.to_string(),
                    state: status.name().to_string(),
                    approved_by,
                }
            }
        };
        // The holder may be this replica; others were notified when the vote committed.
        self.changed(id).await;
        Ok(counted)
    }

    /// A click from a platform: token → approval, platform identity → person → vote. Every
    /// refused click is recorded (with the platform identity and why) before it is answered: a
    /// forged or replayed button is evidence, not noise.
    pub async fn click(&self, click: &Click) -> Reply {
        let refuse = |text: &str| Reply {
            ok: false,
            text: text.to_string(),
        };
        let claims = match Claims::parse(&click.token) {
            Ok(c) => c,
            Err(e) => {
                self.refused_click(
                    click,
                    &click.user,
                    None,
                    None,
                    &format!("the button token is not valid: {e}"),
                )
                .await;
                return refuse("This button is not valid.");
            }
        };
        let id = claims.id.as_str();
        // The identity the platform vouches for, confirmed by the channel where it must be.
        let user = match self.channel(click.channel) {
            Some(ch) => match ch.identify(click).await {
                Ok(u) => u,
                Err(e) => {
                    self.refused_click(
                        click,
                        &click.user,
                        Some(id),
                        None,
                        &format!("the account could not be confirmed: {e}"),
                    )
                    .await;
                    return refuse("Your account could not be confirmed, so your click changed nothing.");
                }
            },
            None => click.user.clone(),
        };
        let Some(person) = self.inner.people.by_identity(click.channel, &user) else {
            self.refused_click(click, &user, Some(id), None, "not a configured person")
                .await;
            return refuse("You are not configured as an approver in airlock, so your click changed nothing.");
        };
        let digest = match self.digest_of(id).await {
            Some(d) => d,
            None => {
                self.refused_click(click, &user, Some(id), Some(&person), "no such approval")
                    .await;
                return refuse("This request is unknown to airlock.");
            }
        };
        let now = now_ms() / 1000;
        let verified = match self.channel(click.channel).is_some_and(|c| c.binds_tokens()) {
            true => claims.verify_for(&self.inner.key, &digest, &token::holder(click.channel, &person), now),
            false => claims.verify(&self.inner.key, &digest, now),
        };
        if let Err(e) = verified {
            // Someone else's token, a forgery, a stale button: evidence, recorded.
            self.refused_click(
                click,
                &user,
                Some(id),
                Some(&person),
                &format!("the button was refused: {e}"),
            )
            .await;
            return refuse(&format!("This button was refused: {e}."));
        }
        match self.vote(id, &person, claims.decision, click.channel).await {
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
            Err(e) => {
                // `vote` recorded a refusal by the state machine itself.
                if !matches!(e, VoteError::Refused(_)) {
                    self.refused_click(click, &user, Some(id), Some(&person), &e.to_string())
                        .await;
                }
                refuse(&format!("Your click changed nothing: {e}."))
            }
        }
    }

    /// Records a refused click: who clicked on which platform, on what, and why.
    /// `user` is the identity the channel confirmed (Mattermost: the username the API gave),
    /// else the one the click carries.
    async fn refused_click(&self, click: &Click, user: &str, approval: Option<&str>, person: Option<&str>, why: &str) {
        let channel = click.channel;
        let (agent, host) = match approval {
            Some(id) => match self.inner.store.get_approval(id).await {
                Ok(Some(row)) => (row.agent, row.host),
                _ => (String::new(), String::new()),
            },
            None => (String::new(), String::new()),
        };
        self.audit_durable(event(
            "vote",
            &agent,
            &host,
            "refused",
            &match person {
                Some(p) => format!("{p} via {channel} (user {user}): click refused: {why}"),
                None => format!("click by {channel} user {user} refused: {why}"),
            },
            serde_json::json!({
                "approval": approval,
                "channel": channel,
                "user": user,
                "person": person,
                "reason": why,
            }),
        ))
        .await;
    }

    async fn digest_of(&self, id: &str) -> Option<String> {
        if let Some(d) = self.with_live(id, |l| l.card.digest.clone()) {
            return Some(d);
        }
        self.inner.store.get_approval(id).await.ok().flatten().map(|r| r.digest)
    }
}

type Counting = (Result<Effect, VoteError>, String, String);

/// A vote being counted, for its audit records.
struct Voted<'a> {
    id: &'a str,
    person: &'a str,
    channel: &'a str,
    decision: Decision,
    at_ms: u64,
}

impl Voted<'_> {
    /// The records a counted vote commits with: the vote, and the outcome when it decided
    /// (the replica whose vote decided records it, once). None for a refused vote.
    fn records(&self, t: &Tally<Counting>) -> Vec<(i64, Vec<u8>)> {
        let (agent, host, decided) = match t {
            Tally::Refuse(_) => return Vec::new(),
            Tally::Record((_, agent, host)) => (agent, host, None),
            Tally::Close { then, .. } => match then {
                (Ok(Effect::Decided(status, card)), agent, host) => (agent, host, Some((status, card))),
                (_, agent, host) => (agent, host, None),
            },
        };
        let (id, person, channel) = (self.id, self.person, self.channel);
        let vote = event(
            "vote",
            agent,
            host,
            match self.decision {
                Decision::Approve => "approve",
                Decision::Deny => "deny",
                Decision::Grant => "grant",
            },
            &format!("{person} voted via {channel}"),
            serde_json::json!({ "approval": id, "person": person, "channel": channel, "at_ms": self.at_ms }),
        );
        let outcome = decided.map(|(status, card)| {
            event(
                "approval",
                agent,
                host,
                status.name(),
                &view::status_text(status),
                serde_json::json!({ "approval": id, "digest": card.digest }),
            )
        });
        [Some(vote), outcome]
            .into_iter()
            .flatten()
            .map(|ev| (i64::try_from(ev.ts_ms).unwrap_or(i64::MAX), ev.canonical()))
            .collect()
    }
}

/// Inside the vote's transaction: replays the recorded votes and the new one through the core
/// state machine, with every voter's roles from the operator's `[people]` (never from the vote).
fn tally(approval: &ApprovalRow, earlier: &[VoteRow], new: &VoteRow, people: &People) -> Tally<Counting> {
    let (agent, host) = (approval.agent.clone(), approval.host.clone());
    let refuse = |e: VoteError| Tally::Refuse((Err(e), agent.clone(), host.clone()));
    if approval.state != "pending" {
        return refuse(VoteError::Closed(approval.state.clone()));
    }
    let Ok(card) = serde_json::from_slice::<Card>(&approval.card) else {
        return refuse(VoteError::Store(format!(
            "approval {:?} has an unreadable card",
            approval.id
        )));
    };
    if new.grant && card.grant_secs.is_none() {
        return refuse(VoteError::NoGrant);
    }
    let as_vote = |v: &VoteRow| Vote {
        person: v.person.clone(),
        roles: people.get(&v.person).map(|p| p.roles.clone()).unwrap_or_default(),
        approve: v.approve,
        channel: v.channel.clone(),
        at_ms: v.at_ms as u64,
    };
    let requirements = card
        .rules
        .iter()
        .map(|r| Requirement {
            rule: r.name.clone(),
            roles: r.approvers.clone(),
            quorum: r.quorum.max(1),
        })
        .collect();
    let created = approval.created_ms as u64;
    let timeout = (approval.expires_ms as u64).saturating_sub(created);
    let mut pending = Pending::new(
        approval.id.clone(),
        approval.digest.clone(),
        requirements,
        created,
        timeout,
    );
    for v in earlier {
        pending = match pending.vote(as_vote(v)) {
            Ok(Step::Waiting(p)) => p,
            // Counted before and now refused (a person's roles were removed since): it no longer counts.
            Err((p, _)) => p,
            // Decided by the recorded votes alone (the configuration changed since): leave it to expire.
            Ok(Step::Decided(_)) => {
                return refuse(VoteError::Closed("undecidable after a configuration change".into()));
            }
        };
    }
    match pending.vote(as_vote(new)) {
        Err((_, r)) => refuse(VoteError::Refused(r)),
        Ok(Step::Waiting(p)) => {
            let approved_by = p.approvers().iter().map(|s| s.to_string()).collect();
            Tally::Record((Ok(Effect::Waiting(approved_by)), agent, host))
        }
        Ok(Step::Decided(closed)) => {
            let granting: Vec<&str> = earlier
                .iter()
                .chain([new])
                .filter(|v| v.grant)
                .map(|v| v.person.as_str())
                .collect();
            let status = final_status(&closed, card.grant_secs, &granting);
            Tally::Close {
                state: status.name().to_string(),
                status: serde_json::to_vec(&status).unwrap_or_default(),
                then: (Ok(Effect::Decided(status, Box::new(card))), agent, host),
            }
        }
    }
}

/// The status a decision by votes ends in. A grant is given when every approver asked for one.
fn final_status(closed: &Closed, grant_secs: Option<u64>, granting: &[&str]) -> Status {
    let at_ms = closed.at_ms;
    match closed.outcome {
        Outcome::Approved => {
            let by: Vec<String> = closed.pending.approvers().iter().map(|s| s.to_string()).collect();
            let all_grant = !by.is_empty() && by.iter().all(|p| granting.contains(&p.as_str()));
            Status::Approved {
                by,
                at_ms,
                grant_secs: grant_secs.filter(|_| all_grant),
            }
        }
        Outcome::Denied => {
            let by = closed
                .pending
                .votes
                .iter()
                .find(|v| !v.approve)
                .map(|v| v.person.clone())
                .unwrap_or_default();
            Status::Denied { by, at_ms }
        }
        Outcome::Expired => Status::Expired { at_ms },
        Outcome::Abandoned => Status::Abandoned { at_ms },
    }
}
