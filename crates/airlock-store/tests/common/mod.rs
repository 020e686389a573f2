//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_core::audit::AuditEvent;
use airlock_store::{Signer, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

pub const KEY: &[u8] = b"test-checkpoint-key";
pub const OTHER_KEY: &[u8] = b"someone-elses-key";

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

pub struct TempDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub async fn new_db() -> (TempDb, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("airlock.db");
    let store = Store::create_sqlite(&path).await.unwrap();
    (TempDb { dir, path }, store)
}

/// A second, independent pool on the same file: the "attacker with file access".
pub async fn raw_pool(path: &Path) -> SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap()
}

pub async fn exec(pool: &SqlitePool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Removes the append-only triggers, as someone editing the file directly would.
pub async fn drop_guards(pool: &SqlitePool) {
    exec(
        pool,
        "DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_no_delete; \
         DROP TRIGGER audit_checkpoints_no_update; DROP TRIGGER audit_checkpoints_no_delete;",
    )
    .await;
}
