//! Shared helpers for the integration tests: one test body, run against both backends.
//!
//! Each PostgreSQL test gets a database of its own (created here, dropped when its [`TestDb`] is
//! dropped, also after a panic), so tests run in parallel. The server comes from
//! `AIRLOCK_TEST_POSTGRES_URL` (a role allowed to CREATE DATABASE), by default the one
//! `scripts/postgres-for-tests.sh` sets up. An unreachable server fails the test: never a skip.
#![allow(dead_code)]

pub mod pg;

use std::path::PathBuf;
use std::sync::Arc;

use airlock_core::audit::AuditEvent;
use airlock_store::{Signer, Store};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

pub const KEY: &[u8] = b"test-checkpoint-key";
pub const OTHER_KEY: &[u8] = b"someone-elses-key";

/// Emits `sqlite::NAME` and `postgres::NAME` for each `async fn NAME(backend: Backend)` listed,
/// each with the attributes given (`#[tokio::test]`, or a multi-threaded flavour).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($( $(#[$attr:meta])* $name:ident ),* $(,)?) => {
        mod sqlite {
            $( $(#[$attr])* async fn $name() { super::$name(crate::common::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( $(#[$attr])* async fn $name() { super::$name(crate::common::Backend::Postgres).await } )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// A deterministic stand-in for Ed25519: the "signature" is the message XORed with the key.
fn fake_sig(key: &[u8], msg: &[u8]) -> Vec<u8> {
    msg.iter().zip(key.iter().cycle()).map(|(m, k)| m ^ k).collect()
}

pub fn signer(key: &'static [u8]) -> Signer {
    Arc::new(move |msg: &[u8]| (fake_sig(key, msg), key.to_vec()))
}

pub fn verify_sig(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    !public_key.is_empty() && sig == fake_sig(public_key, msg).as_slice()
}

pub fn event(n: u64) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_700_000_000_000 + n,
        kind: "request".into(),
        agent: Some(format!("agent-{}", n % 8)),
        method: Some("GET".into()),
        host: Some("api.example.com".into()),
        path: Some(format!("/v1/items/{n}")),
        rules: vec!["allow-example".into()],
        decision: "allow".into(),
        reason: "rule allow-example".into(),
        secrets: vec![],
        status: Some(200),
        bytes_in: n,
        bytes_out: 2 * n,
        latency_us: 10,
        detail: None,
    }
}

/// `event(n)` for each `n`, as `Store::append_audit_chained` takes them: `(ts_ms, canonical body)`.
pub fn events(ns: std::ops::RangeInclusive<u64>) -> Vec<(i64, Vec<u8>)> {
    ns.map(|n| {
        let e = event(n);
        (e.ts_ms as i64, e.canonical())
    })
    .collect()
}

/// Polls `cond` (a flag nothing notifies about) until it holds; panics after about 10 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every stored record's seq, ascending.
pub async fn all_seqs(store: &Store) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let page = store.audit_page(seqs.last().copied().unwrap_or(0), 777).await.unwrap();
        if page.is_empty() {
            return seqs;
        }
        seqs.extend(page.iter().map(|r| r.seq));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store's database: a SQLite file in a temporary directory, or a PostgreSQL
/// database of its own.
pub struct TestDb {
    pub backend: Backend,
    /// What `Store::open` takes to open this database again.
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The SQLite file (unused for PostgreSQL).
    pub path: PathBuf,
    /// The PostgreSQL database (`None` for SQLite).
    pub pg: Option<pg::Database>,
}

/// A database created with the schema, and a store open on it.
pub async fn new_db(backend: Backend) -> (TestDb, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("airlock.db");
    let (url, pg) = match backend {
        Backend::Sqlite => (path.display().to_string(), None),
        Backend::Postgres => {
            let d = pg::Database::create().await;
            (d.url.clone(), Some(d))
        }
    };
    let store = Store::create(&url)
        .await
        .unwrap_or_else(|e| panic!("creating the store: {e}"));
    let db = TestDb {
        backend,
        url,
        dir,
        path,
        pg,
    };
    (db, store)
}

impl TestDb {
    pub async fn reopen(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    /// The statement for this backend's SQL dialect.
    pub fn pick<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self.backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        }
    }

    /// SQL that replaces `from` by `to` inside record `seq`'s body (the JSON text), without rehashing.
    pub fn edit_body(&self, seq: i64, from: &str, to: &str) -> String {
        let sqlite = format!("CAST(replace(CAST(body AS TEXT), '{from}', '{to}') AS BLOB)");
        let postgres = format!("convert_to(replace(convert_from(body, 'UTF8'), '{from}', '{to}'), 'UTF8')");
        format!(
            "UPDATE audit_records SET body = {} WHERE seq = {seq}",
            self.pick(&sqlite, &postgres)
        )
    }

    /// A literal of `bytes` in this backend's SQL.
    pub fn bytes(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self.backend {
            Backend::Sqlite => format!("x'{hex}'"),
            Backend::Postgres => format!("'\\x{hex}'::bytea"),
        }
    }

    /// A second, independent connection to the database: the "attacker with database access".
    pub async fn raw(&self) -> Raw {
        match self.backend {
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::new()
                    .filename(&self.path)
                    .busy_timeout(std::time::Duration::from_secs(5));
                Raw::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts)
                        .await
                        .unwrap(),
                )
            }
            Backend::Postgres => Raw::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&self.url)
                    .await
                    .unwrap(),
            ),
        }
    }
}

pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction holding the audit table's write lock until [`WriteLock::release`].
pub enum WriteLock {
    Sqlite(PoolConnection<sqlx::Sqlite>),
    Postgres(PoolConnection<sqlx::Postgres>),
}

impl Raw {
    pub async fn try_exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Raw::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Raw::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
    }

    pub async fn exec(&self, sql: &str) {
        self.try_exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Removes the append-only triggers, as someone editing the database directly would.
    pub async fn drop_guards(&self) {
        self.exec(match self {
            Raw::Sqlite(_) => {
                "DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_no_delete; \
                 DROP TRIGGER audit_checkpoints_no_update; DROP TRIGGER audit_checkpoints_no_delete;"
            }
            Raw::Postgres(_) => {
                "DROP TRIGGER audit_records_no_change ON audit_records; \
                 DROP TRIGGER audit_checkpoints_no_change ON audit_checkpoints;"
            }
        })
        .await;
    }

    /// Blocks every other writer of `audit_records` (SQLite: the database's write lock).
    pub async fn lock_audit_table(&self) -> WriteLock {
        match self {
            Raw::Sqlite(p) => {
                let mut c = p.acquire().await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *c).await.unwrap();
                WriteLock::Sqlite(c)
            }
            Raw::Postgres(p) => {
                let mut c = p.acquire().await.unwrap();
                let sql = "BEGIN; LOCK TABLE audit_records IN EXCLUSIVE MODE;";
                sqlx::raw_sql(sql).execute(&mut *c).await.unwrap();
                WriteLock::Postgres(c)
            }
        }
    }
}

impl WriteLock {
    pub async fn release(self) {
        match self {
            WriteLock::Sqlite(mut c) => sqlx::raw_sql("ROLLBACK").execute(&mut *c).await.map(drop),
            WriteLock::Postgres(mut c) => sqlx::raw_sql("ROLLBACK").execute(&mut *c).await.map(drop),
        }
        .unwrap();
    }
}
