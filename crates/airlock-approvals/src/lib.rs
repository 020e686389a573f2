//! The approvals hub (invariants 5–8 at the edge): holds a request, persists it, fans its
//! card out to every eligible approver on every channel they have, turns clicks into votes
//! through the core's state machine, and hands the waiting request its verdict — once.
//!
//! The hub never trusts a channel for *who* voted beyond the platform identity the channel
//! authenticated: identity → person comes from the operator's `[people]`, roles from there,
//! and the button's signed token must match the approval's digest.
#![forbid(unsafe_code)]

mod fanout;
mod grants;
mod people;
mod ticket;
mod view;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use airlock_channels::token::{self, Claims, Decision};
use airlock_channels::{Buttons, Card, Channel, Click, HeldRequest, Person, Reply, RuleLine, Status};
use airlock_core::approval::{Closed, Outcome, Pending, Refused, Requirement, Step, Vote};
use airlock_core::audit::AuditEvent;
use airlock_core::policy::ApprovalSpec;
use airlock_store::{ApprovalRow, AuditHandle, GrantRow, Store, StoreError, VoteRow};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use people::People;
pub use ticket::Ticket;
pub use view::ApprovalView;

/// What the operator configured.
pub struct HubConfig {
    pub people: Vec<Person>,
    pub channels: Vec<Arc<dyn Channel>>,
    /// Key for the buttons' signed tokens (at least 32 random bytes).
    pub token_key: Vec<u8>,
}

/// One matching `approve` rule.
#[derive(Debug, Clone)]
pub struct HeldRule {
    pub name: String,
    pub reason: String,
    pub spec: ApprovalSpec,
}

/// A request to hold: the exact bytes and the rules that asked for approval.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub held: HeldRequest,
    pub rules: Vec<HeldRule>,
}

/// How a held request ended, as the waiting gateway sees it. Only `Approved` releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approved {
        by: Vec<String>,
    },
    Denied {
        by: String,
    },
    Expired,
    /// Never forwarded: the hub could not record the decision, or could not deliver any card.
    Failed {
        reason: String,
    },
}

/// A change the dashboard and `approvals watch` follow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    pub id: String,
    pub state: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("the approval could not be recorded: {0}")]
    Store(#[from] StoreError),
}

/// Why a vote changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    #[error("no approval {0:?}")]
    Unknown(String),
    #[error("{0:?} is not a configured person")]
    NotAPerson(String),
    #[error("this request was already decided ({0})")]
    Closed(String),
    #[error("{}", .0.reason())]
    Refused(Refused),
    #[error("grants are not offered for this request")]
    NoGrant,
    #[error("the vote could not be recorded: {0}")]
    Store(String),
}

enum Applied {
    NotLive,
    Error(VoteError),
    Step(Result<Step, Refused>),
}

/// What a counted vote did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Counted {
    pub id: String,
    /// "pending", "approved", "denied".
    pub state: String,
    pub approved_by: Vec<String>,
}

pub(crate) struct Live {
    pub(crate) pending: Option<Pending>,
    pub(crate) card: Arc<Card>,
    pub(crate) buttons: Buttons,
    pub(crate) status: Status,
    pub(crate) waiter: Option<oneshot::Sender<Verdict>>,
    pub(crate) rules: Vec<HeldRule>,
    /// People whose approving vote asked for a grant.
    pub(crate) granting: HashSet<String>,
    pub(crate) sent: Vec<fanout::Sent>,
    pub(crate) in_flight: usize,
    pub(crate) delivered: usize,
    pub(crate) failed: usize,
    /// Set once the outcome is applied; the entry is dropped when no send is in flight.
    pub(crate) closed: bool,
}

impl Live {
    /// The new status, passed to every sent card's follower under the same lock, so the
    /// cards see changes in the order they happened.
    pub(crate) fn set_status(&mut self, status: Status) {
        for s in &self.sent {
            s.status.send_replace(status.clone());
        }
        self.status = status;
    }
}

pub(crate) struct Inner {
    pub(crate) people: People,
    pub(crate) channels: Vec<Arc<dyn Channel>>,
    pub(crate) key: Vec<u8>,
    pub(crate) store: Store,
    pub(crate) audit: AuditHandle,
    pub(crate) live: Mutex<HashMap<String, Live>>,
    pub(crate) grants: RwLock<Vec<GrantRow>>,
    pub(crate) events: broadcast::Sender<Event>,
    shutdown: watch::Sender<bool>,
}

/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random_id() -> String {
    use base64::Engine;
    let bytes: [u8; 9] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn state_name(status: &Status) -> &'static str {
    match status {
        Status::Pending { .. } => "pending",
        Status::Approved { .. } => "approved",
        Status::Denied { .. } => "denied",
        Status::Expired { .. } => "expired",
        Status::Abandoned { .. } => "abandoned",
        Status::Withdrawn { .. } => "withdrawn",
        Status::Failed { .. } => "failed",
    }
}

impl Hub {
    /// Starts the hub: approvals left pending by a previous process are marked abandoned (and
    /// their cards updated) — nothing held before a restart is ever forwarded; pull-based
    /// channels start reading clicks.
    pub async fn start(cfg: HubConfig, store: Store, audit: AuditHandle) -> Result<Hub, HubError> {
        let now = now_ms();
        let grants = store.active_grants(now as i64).await?;
        let (events, _) = broadcast::channel(1024);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let hub = Hub {
            inner: Arc::new(Inner {
                people: People::new(cfg.people),
                channels: cfg.channels,
                key: cfg.token_key,
                store,
                audit,
                live: Mutex::new(HashMap::new()),
                grants: RwLock::new(grants),
                events,
                shutdown,
            }),
        };
        hub.abandon_stale(now).await?;
        let (tx, mut rx) = mpsc::channel::<Click>(256);
        for ch in &hub.inner.channels {
            ch.clone().start(tx.clone(), shutdown_rx.clone());
        }
        let h = hub.clone();
        tokio::spawn(async move {
            while let Some(click) = rx.recv().await {
                let h = h.clone();
                // Each click on its own task: a slow acknowledgement never delays the next vote.
                tokio::spawn(async move {
                    let reply = h.click(&click).await;
                    if let Some(ch) = h.channel(click.channel)
                        && let Err(e) = ch.acknowledge(&click, &reply).await
                    {
                        tracing::warn!(channel = click.channel, error = %e, "could not answer a click");
                    }
                });
            }
        });
        Ok(hub)
    }

    /// Stops pull-based channel readers.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    pub fn people(&self) -> &People {
        &self.inner.people
    }

    pub fn channel(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.inner.channels.iter().find(|c| c.name() == name)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub(crate) fn emit(&self, id: &str, status: &Status) {
        let _ = self.inner.events.send(Event {
            id: id.to_string(),
            state: state_name(status).to_string(),
        });
    }

    pub(crate) fn audit(&self, ev: AuditEvent) {
        if self.inner.audit.append(ev).is_err() {
            tracing::error!("audit log unavailable: an approval event was not recorded");
        }
    }

    async fn abandon_stale(&self, now: u64) -> Result<(), HubError> {
        let stale = self.inner.store.list_approvals(Some("pending"), i64::MAX).await?;
        for row in stale {
            let status = Status::Abandoned { at_ms: now };
            let json = serde_json::to_vec(&status).unwrap_or_default();
            if !self
                .inner
                .store
                .close_approval(&row.id, "abandoned", now as i64, &json)
                .await?
            {
                continue;
            }
            self.audit(event(
                "approval",
                &row.agent,
                &row.host,
                "abandoned",
                "the gateway holding this request restarted; it is never forwarded",
                serde_json::json!({ "approval": row.id }),
            ));
            if let Ok(card) = serde_json::from_slice::<Card>(&row.card) {
                fanout::update_stored(self.clone(), row.id.clone(), Arc::new(card), status);
            }
        }
        Ok(())
    }

    /// Holds a request: persists it, sends its cards, and returns the ticket the gateway
    /// waits on. A store failure is an error (the caller denies: fail closed).
    pub async fn hold(&self, req: HoldRequest) -> Result<Ticket, HubError> {
        let now = now_ms();
        let id = random_id();
        let digest = airlock_channels::card::digest(&req.held);
        let timeout_secs = req.rules.iter().map(|r| r.spec.timeout_secs).min().unwrap_or(300);
        // A grant is offered only when every rule offers one; it lasts the shortest period.
        let grant_secs = req
            .rules
            .iter()
            .map(|r| r.spec.grant_secs)
            .collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().min());
        let expires_ms = now + timeout_secs * 1000;
        let lines = req
            .rules
            .iter()
            .map(|r| RuleLine {
                name: r.name.clone(),
                reason: r.reason.clone(),
                approvers: r.spec.approvers.clone(),
                quorum: r.spec.quorum,
            })
            .collect();
        let card = Arc::new(airlock_channels::card::build(
            &req.held,
            &id,
            lines,
            digest.clone(),
            now,
            expires_ms,
            grant_secs,
        ));
        let requirements: Vec<Requirement> = req
            .rules
            .iter()
            .map(|r| Requirement {
                rule: r.name.clone(),
                roles: r.spec.approvers.clone(),
                quorum: r.spec.quorum.max(1),
            })
            .collect();
        let pending = Pending::new(id.clone(), digest.clone(), requirements, now, expires_ms - now);
        self.inner
            .store
            .insert_approval(&ApprovalRow {
                id: id.clone(),
                agent: req.held.agent.clone(),
                host: req.held.host.clone(),
                digest: digest.clone(),
                card: serde_json::to_vec(&*card).unwrap_or_default(),
                state: "pending".into(),
                created_ms: now as i64,
                expires_ms: expires_ms as i64,
                decided_ms: None,
                status: None,
            })
            .await?;
        let exp_secs = expires_ms.div_ceil(1000);
        let buttons = Buttons {
            approve: token::sign(&self.inner.key, &id, &digest, Decision::Approve, exp_secs),
            deny: token::sign(&self.inner.key, &id, &digest, Decision::Deny, exp_secs),
            grant: grant_secs.map(|_| token::sign(&self.inner.key, &id, &digest, Decision::Grant, exp_secs)),
        };
        self.audit(event(
            "approval",
            &req.held.agent,
            &req.held.host,
            "held",
            &format!(
                "held for approval ({})",
                card.rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            serde_json::json!({ "approval": id, "digest": digest, "expires_ms": expires_ms }),
        ));
        let (tx, rx) = oneshot::channel();
        let status = Status::Pending { approved_by: vec![] };
        let live = Live {
            pending: Some(pending),
            card: card.clone(),
            buttons,
            status: status.clone(),
            waiter: Some(tx),
            rules: req.rules,
            granting: HashSet::new(),
            sent: Vec::new(),
            in_flight: 0,
            delivered: 0,
            failed: 0,
            closed: false,
        };
        if let Ok(mut map) = self.inner.live.lock() {
            map.insert(id.clone(), live);
        }
        self.emit(&id, &status);
        fanout::send_cards(self, &id, &card);
        Ok(Ticket::new(self.clone(), id, expires_ms, rx))
    }

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
    fn apply_vote(
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
            return Applied::Error(VoteError::Closed(state_name(&live.status).into()));
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

    pub(crate) fn with_live<T>(&self, id: &str, f: impl FnOnce(&mut Live) -> T) -> Option<T> {
        self.inner.live.lock().ok()?.get_mut(id).map(f)
    }

    fn agent_host(&self, id: &str) -> (String, String) {
        self.with_live(id, |l| (l.card.agent.clone(), l.card.host.clone()))
            .unwrap_or_default()
    }

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
    async fn finish(&self, id: &str, closed: Closed, failure: Option<String>) -> String {
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
        let state = state_name(&status);
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
