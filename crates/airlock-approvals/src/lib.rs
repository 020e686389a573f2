//! The approvals hub (invariants 5–8 at the edge): holds a request, persists it, fans its
//! card out to every eligible approver on every channel they have, turns clicks into votes
//! through the core's state machine, and hands the waiting request its verdict — once.
//!
//! The hub never trusts a channel for *who* voted beyond the platform identity the channel
//! authenticated: identity → person comes from the operator's `[people]`, roles from there,
//! and the button's signed token must match the approval's digest.
//!
//! Several replicas may share one store: the store is the truth. A vote is counted by whichever
//! replica receives it, in one transaction under the approval's lock (the core state machine
//! replays the recorded votes and the new one); a decision closes the row once (`UPDATE … WHERE
//! state = 'pending'`). Only the replica holding the agent's connection forwards, after reading
//! the closed row — told at commit by the store's notifications, or by polling when one was
//! missed (see `cluster`).
#![forbid(unsafe_code)]

mod announced;
mod cluster;
mod defer;
mod fanout;
mod grants;
mod health;
mod link;
mod outcome;
mod people;
mod ticket;
mod view;
mod vote;

pub(crate) use outcome::event;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_channels::token::{self, Decision};
use airlock_channels::{Buttons, Card, Channel, HeldRequest, Person, RuleLine, Status};
use airlock_core::approval::Refused;
use airlock_core::audit::AuditEvent;
use airlock_core::policy::ApprovalSpec;
use airlock_store::{ApprovalRow, AuditHandle, GrantRow, Store, StoreError};
use tokio::sync::{broadcast, oneshot, watch};

pub use defer::Deferred;
pub use health::ChannelHealth;
pub use link::LinkView;
pub use people::People;
pub use ticket::Ticket;
pub use view::{ApprovalView, Listing};

/// What the operator configured.
pub struct HubConfig {
    pub people: Vec<Person>,
    pub channels: Vec<Arc<dyn Channel>>,
    /// Key for the buttons' signed tokens (at least 32 random bytes).
    pub token_key: Vec<u8>,
    /// How long a replica that stops renewing its lease is still taken to be alive: after it,
    /// the survivors abandon the approvals it held.
    pub lease: Duration,
}

/// One matching `approve` rule.
#[derive(Debug, Clone)]
pub struct HeldRule {
    pub name: String,
    pub reason: String,
    pub spec: ApprovalSpec,
}

impl HeldRule {
    /// The `approve` rules among `matched` (indexes into `policy`) that name approvers: what a
    /// hold waits on, HTTP request or database statement alike.
    pub fn from_matched(policy: &airlock_core::policy::Policy, matched: &[usize]) -> Vec<HeldRule> {
        matched
            .iter()
            .filter_map(|&i| policy.rules.get(i))
            .filter(|r| r.action == airlock_core::policy::Action::Approve)
            .filter_map(|r| {
                Some(HeldRule {
                    name: r.name.clone(),
                    reason: r
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("rule \"{}\" requires human approval", r.name)),
                    spec: r.approval.clone()?,
                })
            })
            .collect()
    }
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

/// What a counted vote did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Counted {
    pub id: String,
    /// "pending", "approved", "denied".
    pub state: String,
    pub approved_by: Vec<String>,
}

/// An approval this replica holds: the agent's connection waits on `waiter`.
pub(crate) struct Live {
    pub(crate) card: Arc<Card>,
    pub(crate) buttons: Buttons,
    pub(crate) status: Status,
    pub(crate) waiter: Option<oneshot::Sender<Verdict>>,
    pub(crate) sent: Vec<fanout::Sent>,
    pub(crate) in_flight: usize,
    pub(crate) delivered: usize,
    pub(crate) failed: usize,
    /// Set once the verdict is delivered; the entry is dropped when no send is in flight.
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
    /// This process's replica id (random per start): approvals it holds carry it.
    pub(crate) replica: String,
    pub(crate) lease: Duration,
    pub(crate) live: Mutex<HashMap<String, Live>>,
    pub(crate) grants: RwLock<Vec<GrantRow>>,
    pub(crate) events: broadcast::Sender<Event>,
    /// Approvals held elsewhere already announced as decided (see [`announced`]).
    pub(crate) announced: Mutex<announced::Announced>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) health: health::Health,
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

/// 72 random bits as lowercase hex: safe as a command-line argument (never starts with
/// '-'), in URLs and in button tokens, and selected whole by a double-click.
fn random_id() -> String {
    let bytes: [u8; 9] = rand::random();
    hex::encode(bytes)
}

impl Hub {
    /// Starts the hub: registers this replica's lease, listens for other replicas' changes, marks
    /// abandoned what dead replicas (or, on an embedded store, a previous run) left pending —
    /// nothing held by a process that is gone is ever forwarded — and starts the pull-based
    /// channels on whichever replica holds the feed lock.
    pub async fn start(cfg: HubConfig, store: Store, audit: AuditHandle) -> Result<Hub, HubError> {
        let now = now_ms();
        let replica = random_id();
        let lease_ms = cfg.lease.as_millis() as i64;
        store.replica_alive(&replica, now as i64, now as i64 + lease_ms).await?;
        // Listening before anything is held: no answer to this replica's approvals can be missed.
        let listener = store.listen().await?;
        let grants = store.active_grants(now as i64).await?;
        let (events, _) = broadcast::channel(1024);
        let (shutdown, _) = watch::channel(false);
        let health = health::Health::new(cfg.channels.iter().map(|c| c.name()), now + lease_ms as u64);
        let hub = Hub {
            inner: Arc::new(Inner {
                health,
                people: People::new(cfg.people),
                channels: cfg.channels,
                key: cfg.token_key,
                store,
                audit,
                replica,
                lease: cfg.lease,
                live: Mutex::new(HashMap::new()),
                grants: RwLock::new(grants),
                events,
                announced: Mutex::default(),
                shutdown,
            }),
        };
        hub.sweep(now, true).await?;
        cluster::spawn(&hub, listener);
        Ok(hub)
    }

    /// Stops pull-based channel readers and this replica's background work, and ends its lease:
    /// what it still holds is abandoned (never forwarded, cards updated) by the next sweep of a
    /// surviving replica, or of this gateway's next start on an embedded store.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        if let Err(e) = self.inner.store.replica_gone(&self.inner.replica, 0).await {
            tracing::warn!(error = %e, "could not end this replica's lease; it runs out by itself");
        }
    }

    pub fn people(&self) -> &People {
        &self.inner.people
    }

    /// The configured channels' names, in routing order.
    pub fn channel_names(&self) -> Vec<&'static str> {
        self.inner.channels.iter().map(|c| c.name()).collect()
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
            state: status.name().to_string(),
        });
    }

    /// Tells the dashboards about an approval another replica holds, unless it is stale or
    /// already said (a late read never takes a decided approval back to pending).
    pub(crate) fn announce(&self, id: &str, state: &str) {
        let news = self.inner.announced.lock().is_ok_and(|mut a| a.news(id, state));
        if news {
            let _ = self.inner.events.send(Event {
                id: id.to_string(),
                state: state.to_string(),
            });
        }
    }

    pub(crate) fn audit(&self, ev: AuditEvent) {
        if self.inner.audit.append(ev).is_err() {
            tracing::error!("audit log unavailable: an approval event was not recorded");
        }
    }

    /// [`audit`](Self::audit), waiting until the record is committed: for what is answered to
    /// someone (a refused vote or click) only after it is recorded.
    pub(crate) async fn audit_durable(&self, ev: AuditEvent) {
        if let Err(e) = self.inner.audit.append_durable(ev).await {
            tracing::error!(error = %e, "audit log unavailable: a refused vote was not recorded");
        }
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
        // The card carries every rule's approvers and quorum: any replica counting a vote
        // rebuilds the requirements from it.
        let lines = req
            .rules
            .iter()
            .map(|r| RuleLine {
                name: r.name.clone(),
                reason: r.reason.clone(),
                approvers: r.spec.approvers.clone(),
                quorum: r.spec.quorum.max(1),
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
        let exp_secs = expires_ms.div_ceil(1000);
        let buttons = Buttons {
            approve: token::sign(&self.inner.key, &id, &digest, Decision::Approve, exp_secs),
            deny: token::sign(&self.inner.key, &id, &digest, Decision::Deny, exp_secs),
            grant: grant_secs.map(|_| token::sign(&self.inner.key, &id, &digest, Decision::Grant, exp_secs)),
        };
        // The waiter is in place before the row exists: a decision made the instant the row
        // is visible (on any replica) finds it.
        let (tx, rx) = oneshot::channel();
        let status = Status::Pending { approved_by: vec![] };
        let live = Live {
            card: card.clone(),
            buttons,
            status: status.clone(),
            waiter: Some(tx),
            sent: Vec::new(),
            in_flight: 0,
            delivered: 0,
            failed: 0,
            closed: false,
        };
        if let Ok(mut map) = self.inner.live.lock() {
            map.insert(id.clone(), live);
        }
        let inserted = self
            .inner
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
                replica: Some(self.inner.replica.clone()),
            })
            .await;
        if let Err(e) = inserted {
            if let Ok(mut map) = self.inner.live.lock() {
                map.remove(&id);
            }
            return Err(e.into());
        }
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
            serde_json::json!({ "approval": id, "digest": digest, "expires_ms": expires_ms, "replica": self.inner.replica }),
        ));
        self.emit(&id, &status);
        fanout::send_cards(self, &id, &card);
        Ok(Ticket::new(self.clone(), id, expires_ms, rx))
    }

    pub(crate) fn with_live<T>(&self, id: &str, f: impl FnOnce(&mut Live) -> T) -> Option<T> {
        self.inner.live.lock().ok()?.get_mut(id).map(f)
    }
}
