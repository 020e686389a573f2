//! airlock's persistence: one [`Store`] interface over a database backend (SQLite today; a
//! PostgreSQL backend slots in as another [`Backend`] variant without changing callers), plus the
//! [`AuditWriter`] that appends the hash-chained audit log off the request path, and
//! [`verify_chain`] that checks it.
//!
//! The store holds bytes it does not interpret: secrets arrive sealed, audit records arrive with
//! their hashes computed by `airlock_core::audit`. Timestamps are milliseconds passed in by callers.
//! Rows read back are checked for shape; a damaged row is [`StoreError::Corrupt`], never a panic.
#![forbid(unsafe_code)]

mod approvals;
mod approvals_sqlite;
mod audit_writer;
mod error;
mod sql;
mod sqlite;
mod verify;

use std::path::Path;

use sqlx::sqlite::SqlitePool;

pub use approvals::{ApprovalRow, GrantRow, MessageRow, SessionRow, VoteRow};
pub use audit_writer::{AuditHandle, AuditUnavailable, AuditWriter, Signer, WriterOptions};
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

/// A handle to the database. Cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

/// One variant per database. Every `Store` method matches on this and calls the backend's module;
/// adding PostgreSQL means a `Postgres(sqlx::PgPool)` variant, a `postgres` module running the
/// same [`sql`] text, and `migrations/postgres`.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
}

impl Store {
    /// Creates a new SQLite database at `path` and applies the schema.
    /// Fails with [`StoreError::AlreadyExists`] if the file exists.
    pub async fn create_sqlite(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Sqlite(sqlite::create_file(path).await?),
        })
    }

    /// Opens an existing database — a `sqlite://…` URL or a plain file path — and applies any
    /// pending migrations. A missing file is [`StoreError::DatabaseMissing`] (never created here).
    pub async fn open(url_or_path: &str) -> Result<Store, StoreError> {
        if sqlite::is_memory_url(url_or_path) {
            return Store::open_in_memory().await;
        }
        if !url_or_path.starts_with("sqlite:")
            && let Some((scheme, _)) = url_or_path.split_once("://")
        {
            return Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            });
        }
        let opts = sqlite::options_for(url_or_path)?;
        Ok(Store {
            backend: Backend::Sqlite(sqlite::open_file(opts).await?),
        })
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
        }
    }

    /// The backend's name, for logs and `airlock status`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
        }
    }

    // -- meta ----------------------------------------------------------------------------------

    pub async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::get_meta(p, key).await,
        }
    }

    /// Inserts or replaces.
    pub async fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::set_meta(p, key, value).await,
        }
    }

    // -- agents --------------------------------------------------------------------------------

    /// Fails with [`StoreError::AlreadyExists`] if an agent of that name exists.
    pub async fn add_agent(&self, agent: &AgentRow) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::add_agent(p, agent).await,
        }
    }

    /// All agents, ordered by name.
    pub async fn list_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::list_agents(p).await,
        }
    }

    /// `true` if an agent was removed.
    pub async fn remove_agent(&self, name: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::remove_agent(p, name).await,
        }
    }

    // -- secrets -------------------------------------------------------------------------------

    /// Inserts, or replaces the secret of the same name.
    pub async fn put_secret(&self, secret: &SecretRow) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::put_secret(p, secret).await,
        }
    }

    pub async fn get_secret(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::get_secret(p, name).await,
        }
    }

    /// All secrets, ordered by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::list_secrets(p).await,
        }
    }

    /// `true` if a secret was removed.
    pub async fn remove_secret(&self, name: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::remove_secret(p, name).await,
        }
    }

    /// Updates every given secret (matched by name) in one transaction: all or nothing.
    /// A name that is not stored fails with [`StoreError::NotFound`] and changes nothing.
    /// Used by key rotation; it does not insert, and secrets not listed are left alone.
    pub async fn replace_secrets_atomically(&self, rows: &[SecretRow]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::replace_secrets_atomically(p, rows).await,
        }
    }

    // -- audit chain ---------------------------------------------------------------------------

    /// Appends records in one transaction. `seq` is the primary key: a duplicate fails with
    /// [`StoreError::AlreadyExists`] and nothing from the batch is written.
    pub async fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Sqlite(p) => sqlite::append_audit(p, rows).await,
        }
    }

    /// The last record's `(seq, hash)`, or `None` for an empty log.
    pub async fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::audit_head(p).await,
        }
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
        match &self.backend {
            Backend::Sqlite(p) => sqlite::audit_page(p, after_seq, upto_seq, limit).await,
        }
    }

    /// The last `n` records, in ascending `seq` order.
    pub async fn audit_tail(&self, n: i64) -> Result<Vec<AuditRow>, StoreError> {
        if n <= 0 {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Sqlite(p) => sqlite::audit_tail(p, n).await,
        }
    }

    /// Stores a checkpoint. One per `seq`: a second fails with [`StoreError::AlreadyExists`].
    pub async fn put_checkpoint(&self, checkpoint: &CheckpointRow) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::put_checkpoint(p, checkpoint).await,
        }
    }

    /// All checkpoints, ascending by `seq`.
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::checkpoints(p).await,
        }
    }

    /// The checkpoint with the highest `seq`.
    pub async fn last_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::last_checkpoint(p).await,
        }
    }
}
