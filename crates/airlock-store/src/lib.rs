//! airlock's persistence: one [`Store`] interface over a database backend (SQLite, the embedded
//! default, or PostgreSQL, which every replica of a scaled-out gateway shares), plus the
//! [`AuditWriter`] that appends the hash-chained audit log off the request path, and
//! [`verify_chain`] that checks it.
//!
//! The store holds bytes it does not interpret: secrets arrive sealed, audit records arrive with
//! their hashes computed by `airlock_core::audit`. Timestamps are milliseconds passed in by callers.
//! Rows read back are checked for shape; a damaged row is [`StoreError::Corrupt`], never a panic.
#![forbid(unsafe_code)]

/// Calls the backend module's function of the same name, with the pool as first argument.
macro_rules! dispatch {
    ($store:expr, $f:ident($($arg:expr),*)) => {
        match &$store.backend {
            Backend::Sqlite(p) => sqlite::$f(p $(, $arg)*).await,
            Backend::Postgres(p) => postgres::$f(p $(, $arg)*).await,
        }
    };
}

pub mod anchor;
mod apikeys;
mod apikeys_ops;
mod approvals;
mod approvals_ops;
mod audit_writer;
mod cluster;
mod cluster_ops;
mod creds;
mod creds_ops;
mod deferred;
mod deferred_ops;
mod error;
mod ops;
mod postgres;
mod rate;
mod rate_ops;
mod sql;
mod sqlite;
mod verify;

use std::path::Path;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub use apikeys::ApiKeyRow;
pub use approvals::{ApprovalRow, GrantRow, MessageRow, SessionRow, VoteRow};
pub use audit_writer::{AuditHandle, AuditUnavailable, AuditWriter, Signer, WriterOptions};
pub use cluster::{Exclusive, GRANTS, Heard, IDENTITIES, Listener, POLICY, Tally, approval_of, approval_topic};
pub use creds::{NEEDS_CONSENT, OAuthPending};
pub use deferred::Deferral;
pub use error::StoreError;
pub use verify::{VerifyError, VerifyReport, verify_chain};

/// A registered agent: its name and the hash of its gateway token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_ms: i64,
}

/// A sealed secret. The store never sees plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub name: String,
    pub version: i64,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub updated_ms: i64,
}

/// One link of the audit chain. `body` is the event's canonical JSON;
/// `hash = airlock_core::audit::chain_hash(prev_hash, seq, body)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub ts_ms: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub body: Vec<u8>,
}

/// A signed chain head: `signature` over `airlock_core::audit::checkpoint_message(seq, hash)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub signature: Vec<u8>,
    pub public_key: Vec<u8>,
    pub ts_ms: i64,
}

/// Who appends a batch with [`Store::append_audit_chained`], and after what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Random per writer.
    pub writer: [u8; 16],
    /// Grows with each batch the writer commits. With `writer`, it makes a retry after an
    /// ambiguous failure safe: a batch found committed is not appended twice.
    pub number: i64,
    /// The last record of the writer's previous batch, `(seq, hash)`, as it committed it. While
    /// no other writer has appended since, the batch is chained onto this rather than onto what
    /// the database holds, so a head edited (and rehashed) or removed underneath a running writer
    /// shows as a broken link or a gap, as when one writer kept the head in memory.
    pub after: Option<(i64, [u8; 32])>,
}

/// Where [`Store::append_audit_chained`] put a batch: record `first_seq + i` has hash `hashes[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chained {
    pub first_seq: i64,
    pub hashes: Vec<[u8; 32]>,
}

impl Chained {
    /// The batch's last record, `(seq, hash)`; `None` for an empty batch.
    pub fn last(&self) -> Option<(i64, [u8; 32])> {
        let n = i64::try_from(self.hashes.len()).ok()?;
        Some((self.first_seq + n - 1, *self.hashes.last()?))
    }
}

/// A handle to the database. Cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

/// One variant per database. Every `Store` method calls the function of the same name in the
/// backend's module (`dispatch!`); both modules expand the same bodies from [`ops`].
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Creates a new SQLite database at `path` and applies the schema.
    /// Fails with [`StoreError::AlreadyExists`] if the file exists.
    pub async fn create_sqlite(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Sqlite(sqlite::create_file(path).await?),
        })
    }

    /// Creates the store `airlock init` sets up: a new SQLite file (as [`create_sqlite`](Self::create_sqlite)),
    /// or the schema in an existing PostgreSQL database, which must not already hold an airlock
    /// store ([`StoreError::AlreadyExists`]).
    pub async fn create(url_or_path: &str) -> Result<Store, StoreError> {
        if postgres::is_url(url_or_path) {
            return Ok(Store {
                backend: Backend::Postgres(postgres::create(url_or_path).await?),
            });
        }
        if sqlite::is_memory_url(url_or_path) {
            return Store::open_in_memory().await;
        }
        let opts = sqlite::options_for(checked_scheme(url_or_path)?)?;
        Store::create_sqlite(opts.get_filename()).await
    }

    /// Opens an existing database — a `postgres://` / `postgresql://` URL, a `sqlite://…` URL or
    /// a plain file path — and applies any pending migrations (on PostgreSQL under an advisory
    /// lock, so replicas may start together). A missing SQLite file is
    /// [`StoreError::DatabaseMissing`] (never created here); a PostgreSQL server that cannot be
    /// reached is [`StoreError::Connect`], which never shows the URL's password.
    pub async fn open(url_or_path: &str) -> Result<Store, StoreError> {
        if sqlite::is_memory_url(url_or_path) {
            return Store::open_in_memory().await;
        }
        if postgres::is_url(url_or_path) {
            return Ok(Store {
                backend: Backend::Postgres(postgres::open(url_or_path).await?),
            });
        }
        let opts = sqlite::options_for(checked_scheme(url_or_path)?)?;
        Ok(Store {
            backend: Backend::Sqlite(sqlite::open_file(opts).await?),
        })
    }

    /// This store with every wait for a database connection bounded by `timeout` (PostgreSQL; the
    /// default is 2 s). SQLite, a local file, is left as it is. Call before using it.
    pub fn bounded(self, timeout: std::time::Duration) -> Store {
        match self.backend {
            Backend::Postgres(p) => Store {
                backend: Backend::Postgres(postgres::bounded(&p, timeout)),
            },
            sqlite => Store { backend: sqlite },
        }
    }

    /// True when the database answers a trivial query within `timeout` (for readiness checks).
    pub async fn reachable(&self, timeout: std::time::Duration) -> bool {
        matches!(tokio::time::timeout(timeout, self.audit_head()).await, Ok(Ok(_)))
    }

    /// A fresh, private in-memory database (one connection, so it lives as long as the `Store`).
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Sqlite(sqlite::open_memory().await?),
        })
    }

    /// Closes the pool, waiting for connections in use to be returned. Clones share the pool.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// The backend's name, for logs and `airlock status`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// True when other processes (gateway replicas) may share this database: PostgreSQL. SQLite
    /// is embedded and owned by one gateway, which may then keep shared state in memory.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Tells running replicas to reload agents and secrets now rather than at their next poll.
    /// Best effort: the change itself is committed, and replicas poll for it anyway.
    async fn identities_changed(&self) {
        if let Err(e) = self.notify(cluster::IDENTITIES).await {
            tracing::debug!(error = %e, "could not announce an agent or secret change");
        }
    }

    // -- meta ----------------------------------------------------------------------------------

    pub async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, get_meta(key))
    }

    /// Inserts or replaces.
    pub async fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        dispatch!(self, set_meta(key, value))
    }

    /// Removes `key` (nothing happens when it is not set).
    pub async fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, delete_meta(key))
    }

    /// Stores `value` under `key` unless the key is already set, and returns what is stored. Callers
    /// racing on the same key (replicas starting together) all get the one value that won.
    pub async fn meta_insert_or_get(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        dispatch!(self, meta_insert_or_get(key, value))
    }

    // -- agents --------------------------------------------------------------------------------

    /// Fails with [`StoreError::AlreadyExists`] if an agent of that name exists.
    pub async fn add_agent(&self, agent: &AgentRow) -> Result<(), StoreError> {
        dispatch!(self, add_agent(agent))?;
        self.identities_changed().await;
        Ok(())
    }

    /// All agents, ordered by name.
    pub async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        dispatch!(self, list_agents())
    }

    /// `true` if an agent was removed.
    pub async fn remove_agent(&self, name: &str) -> Result<bool, StoreError> {
        let done = dispatch!(self, remove_agent(name))?;
        self.identities_changed().await;
        Ok(done)
    }

    // -- secrets -------------------------------------------------------------------------------

    /// Inserts, or replaces the secret of the same name.
    pub async fn put_secret(&self, secret: &SecretRow) -> Result<(), StoreError> {
        dispatch!(self, put_secret(secret))?;
        self.identities_changed().await;
        Ok(())
    }

    pub async fn get_secret(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        dispatch!(self, get_secret(name))
    }

    /// All secrets, ordered by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        dispatch!(self, list_secrets())
    }

    /// `true` if a secret was removed.
    pub async fn remove_secret(&self, name: &str) -> Result<bool, StoreError> {
        let done = dispatch!(self, remove_secret(name))?;
        self.identities_changed().await;
        Ok(done)
    }

    /// Updates every given secret (matched by name) in one transaction: all or nothing.
    /// A name that is not stored fails with [`StoreError::NotFound`] and changes nothing.
    /// Used by key rotation; it does not insert, and secrets not listed are left alone.
    pub async fn replace_secrets_atomically(&self, rows: &[SecretRow]) -> Result<(), StoreError> {
        dispatch!(self, replace_secrets_atomically(rows))?;
        self.identities_changed().await;
        Ok(())
    }

    // -- audit chain ---------------------------------------------------------------------------

    /// Appends `events` — `(ts_ms, canonical body)` each — in one transaction, chained onto the
    /// head the database has when it commits (or onto [`Batch::after`] while that is the head):
    /// record `first_seq + i` gets `hashes[i] = chain_hash(previous hash, seq, body)`. Appenders
    /// are serialized (PostgreSQL: an advisory lock; SQLite: its write lock), so writers on several
    /// replicas extend one chain without gaps or forks. `ts_ms` must be the timestamp inside the
    /// body (`verify` checks it).
    ///
    /// Safe to retry: if `batch` is the last batch its writer committed (a commit that landed
    /// but whose acknowledgement was lost), nothing is written and its position is returned.
    pub async fn append_audit_chained(&self, batch: Batch, events: &[(i64, Vec<u8>)]) -> Result<Chained, StoreError> {
        if events.is_empty() {
            let first_seq = self.audit_head().await?.map_or(1, |(seq, _)| seq.saturating_add(1));
            return Ok(Chained {
                first_seq,
                hashes: Vec::new(),
            });
        }
        dispatch!(self, append_audit_chained(batch, events))
    }

    /// The last record's `(seq, hash)`, or `None` for an empty log.
    pub async fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        dispatch!(self, audit_head())
    }

    /// Up to `limit` records with `seq > after_seq`, ascending.
    pub async fn audit_page(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_range(after_seq, i64::MAX, limit).await
    }

    /// Up to `limit` records with `after_seq < seq <= upto_seq`, ascending.
    pub(crate) async fn audit_range(
        &self,
        after_seq: i64,
        upto_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        if limit <= 0 || upto_seq <= after_seq {
            return Ok(Vec::new());
        }
        dispatch!(self, audit_page(after_seq, upto_seq, limit))
    }

    /// The last `n` records, in ascending `seq` order.
    pub async fn audit_tail(&self, n: i64) -> Result<Vec<AuditRow>, StoreError> {
        if n <= 0 {
            return Ok(Vec::new());
        }
        dispatch!(self, audit_tail(n))
    }

    /// Stores a checkpoint. One per `seq`: storing the same one again (a retry whose first attempt
    /// landed) succeeds; a different one (other hash, signature or key) at that seq fails with
    /// [`StoreError::AlreadyExists`] and is not stored.
    pub async fn put_checkpoint(&self, checkpoint: &CheckpointRow) -> Result<(), StoreError> {
        dispatch!(self, put_checkpoint(checkpoint))
    }

    /// All checkpoints, ascending by `seq`.
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        dispatch!(self, checkpoints())
    }

    /// The checkpoint with the highest `seq`.
    pub async fn last_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        dispatch!(self, last_checkpoint())
    }
}

/// `url_or_path` as messages may show it: a PostgreSQL URL becomes `postgres://user@host:port/db`
/// (no password, no parameters); anything else is returned as it is.
pub fn redact_url(url_or_path: &str) -> String {
    if postgres::is_url(url_or_path) {
        postgres::redacted(url_or_path)
    } else {
        url_or_path.to_owned()
    }
}

/// `url_or_path` unless it names a scheme other than SQLite's (only the scheme is kept: URLs carry
/// passwords).
fn checked_scheme(url_or_path: &str) -> Result<&str, StoreError> {
    match url_or_path.split_once("://") {
        Some((scheme, _)) if !url_or_path.starts_with("sqlite:") => Err(StoreError::UnsupportedUrl {
            scheme: scheme.to_owned(),
        }),
        _ => Ok(url_or_path),
    }
}
