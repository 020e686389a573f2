//! What replicas sharing one database coordinate through it: votes counted in one transaction,
//! change notifications (PostgreSQL `LISTEN`/`NOTIFY`), replica leases, and an exclusive lock
//! for the one replica that reads each pull-based platform feed.
//!
//! On SQLite the database belongs to one gateway: notifications go nowhere, the lock is always
//! held, and everything else works the same.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};

use crate::{ApprovalRow, Backend, Store, StoreError, VoteRow, postgres, sqlite};

/// The one PostgreSQL notification channel airlock uses; payloads are topics.
pub(crate) const CHANNEL: &str = "airlock";

/// Topic: grants changed (created or revoked).
pub const GRANTS: &str = "grants";
/// Topic: agents or secrets changed.
pub const IDENTITIES: &str = "identities";
/// Topic: a replica reloaded its policy; the others load their config files again.
pub const POLICY: &str = "policy";

/// Topic: approval `id` changed (a vote counted, or decided).
pub fn approval_topic(id: &str) -> String {
    format!("approval:{id}")
}

/// The approval id of an approval topic.
pub fn approval_of(topic: &str) -> Option<&str> {
    topic.strip_prefix("approval:")
}

/// What [`Store::count_vote`]'s decider says to do with a vote, given the approval and the votes
/// already recorded (read under the approval's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally<R> {
    /// Write nothing; `R` says why.
    Refuse(R),
    /// Record the vote; the approval stays pending.
    Record(R),
    /// Record the vote and close the approval: its final `state` and status JSON.
    Close { state: String, status: Vec<u8>, then: R },
}

/// What a [`Listener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A topic changed.
    Topic(String),
    /// The connection was lost and is back: anything may have changed meanwhile.
    Gap,
}

/// Notifications from every replica (PostgreSQL). Never yields on SQLite.
pub struct Listener {
    pg: Option<PgListener>,
}

impl Listener {
    /// The next notification. On PostgreSQL, a lost connection is re-established (and reported
    /// as [`Heard::Gap`]); an error means it could not be, and the caller should retry later.
    pub async fn recv(&mut self) -> Result<Heard, StoreError> {
        let Some(pg) = &mut self.pg else {
            return std::future::pending().await;
        };
        match pg.try_recv().await {
            Ok(Some(n)) => Ok(Heard::Topic(n.payload().to_owned())),
            Ok(None) => Ok(Heard::Gap),
            Err(e) => Err(StoreError::Unavailable(e)),
        }
    }
}

/// A database-wide lock held by at most one process at a time, for as long as its session lives
/// (PostgreSQL: a session advisory lock on a connection of its own, released by the server when
/// the holder's connection ends — also when the holder is killed). Always held on SQLite.
pub struct Exclusive {
    key: i64,
    opts: Option<sqlx::postgres::PgConnectOptions>,
    conn: Option<PgConnection>,
    held: bool,
}

/// How long one lock check may take before the session is considered lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

impl Exclusive {
    /// True while this process holds the lock: checks that the holding session is alive, or tries
    /// to take the lock when not held. Any failure drops the session (releasing the lock on the
    /// server) and answers false, so a holder cut off from the database stops acting as one.
    pub async fn hold(&mut self) -> bool {
        let Some(opts) = &self.opts else {
            return true;
        };
        let step = async {
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self.conn.insert(PgConnection::connect_with(opts).await?),
            };
            if self.held {
                sqlx::query("SELECT 1").execute(&mut *conn).await?;
                Ok::<bool, sqlx::Error>(true)
            } else {
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(self.key)
                    .fetch_one(&mut *conn)
                    .await
            }
        };
        match tokio::time::timeout(CHECK_TIMEOUT, step).await {
            Ok(Ok(held)) => self.held = held,
            _ => {
                self.held = false;
                if let Some(c) = self.conn.take() {
                    // Closing may hang on a dead peer; dropping the socket is enough.
                    drop(c);
                }
            }
        }
        self.held
    }

    /// Gives the lock up (closing its session).
    pub async fn release(&mut self) {
        self.held = false;
        if let Some(c) = self.conn.take() {
            let _ = tokio::time::timeout(CHECK_TIMEOUT, c.close()).await;
        }
    }
}

impl Store {
    /// Counts a vote in one transaction under the approval's lock: `decide` sees the approval and
    /// the votes already recorded and says whether to refuse the vote, record it, or record it and
    /// close the approval. Votes on one approval are serialized across every replica, so quorum is
    /// counted once; a second vote by the same person is refused by the primary key
    /// ([`StoreError::AlreadyExists`]). `None` when no such approval exists. On PostgreSQL, a
    /// recorded vote notifies every replica at commit.
    pub async fn count_vote<R: Send>(
        &self,
        vote: &VoteRow,
        decide: impl FnOnce(&ApprovalRow, &[VoteRow]) -> Tally<R> + Send,
    ) -> Result<Option<Tally<R>>, StoreError> {
        self.count_vote_audited(vote, |a, v| (decide(a, v), Vec::new())).await
    }

    /// [`count_vote`](Self::count_vote), where `decide` also returns audit records —
    /// `(ts_ms, canonical body)` each — appended to the chain in the same transaction when the
    /// vote is recorded (not when it is refused). So the vote, the decision it made and their
    /// records commit together: a crash never leaves a counted vote (or an approval another
    /// replica may forward) without its records. The audit writer chains its next batch after
    /// them, as after another replica's batch.
    pub async fn count_vote_audited<R: Send>(
        &self,
        vote: &VoteRow,
        decide: impl FnOnce(&ApprovalRow, &[VoteRow]) -> (Tally<R>, Vec<(i64, Vec<u8>)>) + Send,
    ) -> Result<Option<Tally<R>>, StoreError> {
        dispatch!(self, count_vote(vote, decide))
    }

    /// Tells every replica listening that `topic` changed (PostgreSQL; nothing on SQLite).
    pub async fn notify(&self, topic: &str) -> Result<(), StoreError> {
        if !self.is_shared() {
            return Ok(());
        }
        dispatch!(self, notify(topic))
    }

    /// Starts listening for other replicas' notifications. Listen *before* making a change others
    /// will answer (e.g. before inserting an approval), so no answer can be missed.
    pub async fn listen(&self) -> Result<Listener, StoreError> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(Listener { pg: None });
        };
        let mut l = PgListener::connect_with(pool).await.map_err(StoreError::Unavailable)?;
        l.listen(CHANNEL).await.map_err(StoreError::Unavailable)?;
        Ok(Listener { pg: Some(l) })
    }

    /// The database-wide lock numbered `key` (not yet taken: see [`Exclusive::hold`]).
    pub fn exclusive(&self, key: i64) -> Exclusive {
        let opts = match &self.backend {
            Backend::Postgres(pool) => Some((*pool.connect_options()).clone()),
            Backend::Sqlite(_) => None,
        };
        Exclusive {
            key,
            opts,
            conn: None,
            held: false,
        }
    }

    /// Registers or renews replica `id`'s lease until `expires_ms`.
    pub async fn replica_alive(&self, id: &str, started_ms: i64, expires_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, replica_alive(id, started_ms, expires_ms))
    }

    /// Records the SHA-256 of the config file replica `id` runs (shown by `airlock status`).
    pub async fn set_replica_policy(&self, id: &str, sha256: &str) -> Result<(), StoreError> {
        dispatch!(self, set_replica_policy(id, sha256))
    }

    /// Replicas whose lease is live at `now_ms`, oldest first, with the policy each runs.
    pub async fn live_replicas(&self, now_ms: i64) -> Result<Vec<(String, Option<String>)>, StoreError> {
        dispatch!(self, live_replicas(now_ms))
    }

    /// Ends replica `id`'s lease now, and forgets leases that expired before `forget_before_ms`.
    pub async fn replica_gone(&self, id: &str, forget_before_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, replica_gone(id, forget_before_ms))
    }

    /// Pending approvals held by no replica whose lease is live at `now_ms` (their holder died).
    pub async fn orphaned_approvals(&self, now_ms: i64) -> Result<Vec<ApprovalRow>, StoreError> {
        dispatch!(self, orphaned_approvals(now_ms))
    }

    /// Pending approvals whose deadline is before `before_ms`.
    pub async fn overdue_approvals(&self, before_ms: i64) -> Result<Vec<ApprovalRow>, StoreError> {
        dispatch!(self, overdue_approvals(before_ms))
    }

    /// Those of approvals `ids` that are no longer pending (the polling fallback for missed
    /// notifications: the holder asks about what it holds, whatever the replicas' clocks say).
    pub async fn decided_among(&self, ids: &[String]) -> Result<Vec<ApprovalRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, decided_among(ids))
    }
}
