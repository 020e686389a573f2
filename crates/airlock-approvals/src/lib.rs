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
mod outcome;
mod people;
mod ticket;
mod view;
mod vote;

pub(crate) use outcome::event;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use airlock_channels::token::{self, Decision};
use airlock_channels::{Buttons, Card, Channel, Click, HeldRequest, Person, RuleLine, Status};
use airlock_core::approval::{Pending, Refused, Requirement, Step};
use airlock_core::audit::AuditEvent;
use airlock_core::policy::ApprovalSpec;
use airlock_store::{ApprovalRow, AuditHandle, GrantRow, Store, StoreError};
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

/// 72 random bits as lowercase hex: safe as a command-line argument (never starts with
/// '-'), in URLs and in button tokens, and selected whole by a double-click.
fn random_id() -> String {
    let bytes: [u8; 9] = rand::random();
    hex::encode(bytes)
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
            state: status.name().to_string(),
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

    pub(crate) fn with_live<T>(&self, id: &str, f: impl FnOnce(&mut Live) -> T) -> Option<T> {
        self.inner.live.lock().ok()?.get_mut(id).map(f)
    }

    fn agent_host(&self, id: &str) -> (String, String) {
        self.with_live(id, |l| (l.card.agent.clone(), l.card.host.clone()))
            .unwrap_or_default()
    }
}
