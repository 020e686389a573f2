//! Invariant 10: edits made directly to the database file are detected by `verify_chain`,
//! which names the first bad record or checkpoint.

mod common;

use airlock_core::audit::{ChainError, chain_hash, checkpoint_message};
use airlock_store::{AuditWriter, CheckpointRow, Store, StoreError, VerifyError, verify_chain};
use common::{KEY, OTHER_KEY, TempDb, drop_guards, event, exec, new_db, raw_pool, signer, verify_sig};
use sqlx::sqlite::SqlitePool;

/// 50 records, checkpoints at 10, 20, …, 50; then a raw pool with the guards removed.
async fn chain() -> (TempDb, Store, SqlitePool) {
    let (db, store) = new_db().await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 10).await.unwrap();
    for n in 0..50 {
        audit.append(event(n)).unwrap();
    }
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.checkpoints, report.unsigned_tail), (50, 5, 0));
    let raw = raw_pool(&db.path).await;
    drop_guards(&raw).await;
    (db, store, raw)
}

async fn verify(store: &Store) -> VerifyError {
    verify_chain(store, verify_sig, KEY)
        .await
        .expect_err("tampering must be detected")
}

fn chain_err(e: VerifyError) -> ChainError {
    match e {
        VerifyError::Chain(c) => c,
        other => panic!("expected a chain error, got {other:?}"),
    }
}

#[tokio::test]
async fn edited_body_is_detected() {
    let (_db, store, raw) = chain().await;
    exec(
        &raw,
        "UPDATE audit_records SET body = CAST(replace(CAST(body AS TEXT), '\"allow\"', '\"deny\"') AS BLOB) \
         WHERE seq = 23",
    )
    .await;
    let e = verify(&store).await;
    assert_eq!(e.seq(), Some(23));
    assert_eq!(chain_err(e), ChainError::BadHash { seq: 23 });
}

#[tokio::test]
async fn deleted_record_is_detected() {
    let (_db, store, raw) = chain().await;
    exec(&raw, "DELETE FROM audit_records WHERE seq = 17").await;
    assert_eq!(
        chain_err(verify(&store).await),
        ChainError::Gap {
            expected: 17,
            found: 18
        }
    );
}

#[tokio::test]
async fn swapped_records_are_detected() {
    let (_db, store, raw) = chain().await;
    exec(
        &raw,
        "UPDATE audit_records SET seq = 1000 WHERE seq = 30; \
         UPDATE audit_records SET seq = 30 WHERE seq = 31; \
         UPDATE audit_records SET seq = 31 WHERE seq = 1000;",
    )
    .await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BrokenLink { seq: 30 });
}

#[tokio::test]
async fn column_of_the_wrong_type_is_reported_as_corrupt_with_its_seq() {
    let (_db, store, raw) = chain().await;
    exec(&raw, "UPDATE audit_records SET hash = hex(hash) WHERE seq = 12").await;
    match verify(&store).await {
        VerifyError::Store(StoreError::Corrupt { what, seq: Some(12) }) => assert!(what.contains("hash"), "{what}"),
        other => panic!("expected Corrupt at 12, got {other:?}"),
    }
}

#[tokio::test]
async fn the_first_problem_is_the_one_reported() {
    let (_db, store, raw) = chain().await;
    // An edit at 5 and a corrupt row at 12 in the same page: 5 comes first.
    exec(&raw, "UPDATE audit_records SET ts_ms = 0, body = CAST(replace(CAST(body AS TEXT), '/v1', '/v2') AS BLOB) WHERE seq = 5").await;
    exec(&raw, "UPDATE audit_records SET hash = hex(hash) WHERE seq = 12").await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BadHash { seq: 5 });
}

#[tokio::test]
async fn edited_timestamp_column_is_detected() {
    let (_db, store, raw) = chain().await;
    exec(&raw, "UPDATE audit_records SET ts_ms = ts_ms + 3600000 WHERE seq = 41").await;
    let e = verify(&store).await;
    assert!(matches!(e, VerifyError::Timestamp { seq: 41 }), "{e:?}");
}

#[tokio::test]
async fn truncated_tail_is_caught_by_the_checkpoint() {
    let (_db, store, raw) = chain().await;
    exec(&raw, "DELETE FROM audit_records WHERE seq > 44").await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BadCheckpoint { seq: 50 });
}

#[tokio::test]
async fn rewritten_and_rehashed_suffix_is_caught_by_the_checkpoint() {
    let (_db, store, raw) = chain().await;
    // The attacker edits record 45 and recomputes every hash after it: the chain is self-consistent,
    // but no longer matches the signed checkpoint at 50.
    let rows = store.audit_page(0, 100).await.unwrap();
    let mut prev: [u8; 32] = rows[43].hash.clone().try_into().unwrap();
    for r in &rows[44..] {
        let mut ev: airlock_core::audit::AuditEvent = serde_json::from_slice(&r.body).unwrap();
        if r.seq == 45 {
            ev.decision = "deny".into();
        }
        let body = ev.canonical();
        let hash = chain_hash(&prev, r.seq as u64, &body);
        sqlx::query("UPDATE audit_records SET prev_hash = $1, hash = $2, body = $3 WHERE seq = $4")
            .bind(prev.to_vec())
            .bind(hash.to_vec())
            .bind(body)
            .bind(r.seq)
            .execute(&raw)
            .await
            .unwrap();
        prev = hash;
    }
    assert_eq!(chain_err(verify(&store).await), ChainError::BadCheckpoint { seq: 50 });
}

#[tokio::test]
async fn checkpoint_with_a_bad_signature_fails() {
    let (_db, store, raw) = chain().await;
    exec(&raw, "UPDATE audit_checkpoints SET signature = x'00' WHERE seq = 20").await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BadCheckpoint { seq: 20 });
}

#[tokio::test]
async fn validly_signed_checkpoint_of_a_different_hash_fails() {
    let (_db, store, raw) = chain().await;
    exec(&raw, "DELETE FROM audit_checkpoints WHERE seq = 30").await;
    let forged = [7u8; 32];
    let (signature, public_key) = signer(KEY)(&checkpoint_message(30, &forged));
    let cp = CheckpointRow {
        seq: 30,
        hash: forged.to_vec(),
        signature,
        public_key,
        ts_ms: 0,
    };
    store.put_checkpoint(&cp).await.unwrap();
    assert_eq!(chain_err(verify(&store).await), ChainError::BadCheckpoint { seq: 30 });
}

#[tokio::test]
async fn checkpoint_from_a_foreign_key_fails() {
    // Written by a writer holding another key (a swapped signing key, or a forger's).
    let (_db, store) = new_db().await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(OTHER_KEY), 10).await.unwrap();
    for n in 0..12 {
        audit.append(event(n)).unwrap();
    }
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    let e = verify(&store).await;
    assert!(matches!(e, VerifyError::CheckpointKey { seq: 10 }), "{e:?}");
    // The same log verifies against the key that actually signed it.
    verify_chain(&store, verify_sig, OTHER_KEY).await.unwrap();
}
