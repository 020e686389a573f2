//! The store's one error type. Variants are the cases callers branch on; everything else
//! from the driver is carried in [`StoreError::Db`].

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist (e.g. a secret that an atomic replacement expected).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The thing named already exists (duplicate agent, existing database file or store, duplicate audit seq).
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// [`Store::open`](crate::Store::open) was given a database file that does not exist.
    #[error("database {} does not exist (create it with `airlock init`)", path.display())]
    DatabaseMissing { path: PathBuf },
    /// The database is temporarily unreachable: busy/locked, pool timed out or closed, IO failure.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// A stored row does not have the shape the schema promises (wrong column type, NULL, bad key).
    /// `what` names the table, row and column; `seq` is the audit sequence number for audit rows.
    #[error("corrupt row: {what}")]
    Corrupt { what: String, seq: Option<i64> },
    /// The URL names a database this build cannot open. Only the scheme is kept (URLs carry passwords).
    #[error("unsupported database URL scheme `{scheme}` (expected `postgres://…`, `sqlite://…` or a file path)")]
    UnsupportedUrl { scheme: String },
    /// A `postgres://` URL that does not parse. `reason` never holds the URL's password.
    #[error("invalid PostgreSQL URL: {reason}")]
    BadUrl { reason: String },
    /// The PostgreSQL server could not be reached, or refused the connection (sign-in, unknown
    /// database). `target` is `postgres://user@host:port/db`; neither field holds the password.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect { target: String, reason: String },
    /// A filesystem operation on the database file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// Applying the embedded schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Classifies a driver error. `transient` recognises the backend's "try again later" error codes;
    /// `what` names the row for `AlreadyExists`.
    pub(crate) fn from_sqlx(e: sqlx::Error, transient: fn(&str) -> bool, what: impl FnOnce() -> String) -> Self {
        let kind = match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => Kind::Duplicate,
            sqlx::Error::Database(d) if d.code().is_some_and(|c| transient(&c)) => Kind::Transient,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
                Kind::Transient
            }
            _ => Kind::Other,
        };
        match kind {
            Kind::Duplicate => StoreError::AlreadyExists { what: what() },
            Kind::Transient => StoreError::Unavailable(e),
            Kind::Other => StoreError::Db(e),
        }
    }

    /// The audit sequence number this error is about, if any.
    pub fn seq(&self) -> Option<i64> {
        match self {
            StoreError::Corrupt { seq, .. } => *seq,
            _ => None,
        }
    }
}

enum Kind {
    Duplicate,
    Transient,
    Other,
}
