//! Invariant 10: edits made directly to the database (SQLite file or PostgreSQL tables) are
//! detected by `verify_chain`, which names the first bad record or checkpoint.

mod common;

use airlock_core::audit::{ChainError, chain_hash, checkpoint_message};
use airlock_store::{AuditHandle, AuditWriter, CheckpointRow, Store, StoreError, VerifyError, verify_chain};
use common::{Backend, KEY, OTHER_KEY, Raw, TestDb, event, new_db, on_both_backends, signer, verify_sig};
use tokio::task::JoinHandle;

on_both_backends! {
    #[tokio::test] edited_body_is_detected,
    #[tokio::test] deleted_record_is_detected,
    #[tokio::test] swapped_records_are_detected,
    #[tokio::test] unreadable_column_is_reported_as_corrupt_with_its_seq,
    #[tokio::test] the_first_problem_is_the_one_reported,
    #[tokio::test] edited_timestamp_column_is_detected,
    #[tokio::test] truncated_tail_is_caught_by_the_checkpoint,
    #[tokio::test] rewritten_and_rehashed_suffix_is_caught_by_the_checkpoint,
    #[tokio::test] checkpoint_with_a_bad_signature_fails,
    #[tokio::test] validly_signed_checkpoint_of_a_different_hash_fails,
    #[tokio::test] checkpoint_from_a_foreign_key_fails,
    #[tokio::test] unsigned_head_rewritten_under_a_running_writer_shows_as_a_broken_link,
    #[tokio::test] unsigned_tail_removed_under_a_running_writer_shows_as_a_gap,
}

/// Makes record `seq`'s hash unreadable: text in the BLOB column (SQLite), or NULL once the
/// column has lost its NOT NULL (PostgreSQL, whose columns hold only their declared type).
fn damage_hash(db: &TestDb, seq: i64) -> String {
    match db.backend {
        Backend::Sqlite => format!("UPDATE audit_records SET hash = hex(hash) WHERE seq = {seq}"),
        Backend::Postgres => format!(
            "ALTER TABLE audit_records ALTER COLUMN hash DROP NOT NULL; \
             UPDATE audit_records SET hash = NULL WHERE seq = {seq}"
        ),
    }
}

/// 50 records, checkpoints at 10, 20, …, 50; then a raw connection with the guards removed.
async fn chain(backend: Backend) -> (TestDb, Store, Raw) {
    let (db, store) = new_db(backend).await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 10).await.unwrap();
    for n in 0..50 {
        audit.append(event(n)).unwrap();
    }
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.checkpoints, report.unsigned_tail), (50, 5, 0));
    let raw = db.raw().await;
    raw.drop_guards().await;
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

async fn edited_body_is_detected(backend: Backend) {
    let (db, store, raw) = chain(backend).await;
    raw.exec(&db.edit_body(23, "\"allow\"", "\"deny\"")).await;
    let e = verify(&store).await;
    assert_eq!(e.seq(), Some(23));
    assert_eq!(chain_err(e), ChainError::BadHash { seq: 23 });
}

async fn deleted_record_is_detected(backend: Backend) {
    let (_db, store, raw) = chain(backend).await;
    raw.exec("DELETE FROM audit_records WHERE seq = 17").await;
    assert_eq!(
        chain_err(verify(&store).await),
        ChainError::Gap {
            expected: 17,
            found: 18
        }
    );
}

async fn swapped_records_are_detected(backend: Backend) {
    let (_db, store, raw) = chain(backend).await;
    raw.exec(
        "UPDATE audit_records SET seq = 1000 WHERE seq = 30; \
         UPDATE audit_records SET seq = 30 WHERE seq = 31; \
         UPDATE audit_records SET seq = 31 WHERE seq = 1000;",
    )
    .await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BrokenLink { seq: 30 });
}

async fn unreadable_column_is_reported_as_corrupt_with_its_seq(backend: Backend) {
    let (db, store, raw) = chain(backend).await;
    raw.exec(&damage_hash(&db, 12)).await;
    match verify(&store).await {
        VerifyError::Store(StoreError::Corrupt { what, seq: Some(12) }) => assert!(what.contains("hash"), "{what}"),
        other => panic!("expected Corrupt at 12, got {other:?}"),
    }
}

async fn the_first_problem_is_the_one_reported(backend: Backend) {
    let (db, store, raw) = chain(backend).await;
    // An edit at 5 and a corrupt row at 12 in the same page: 5 comes first.
    raw.exec(&db.edit_body(5, "/v1", "/v2")).await;
    raw.exec("UPDATE audit_records SET ts_ms = 0 WHERE seq = 5").await;
    raw.exec(&damage_hash(&db, 12)).await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BadHash { seq: 5 });
}

async fn edited_timestamp_column_is_detected(backend: Backend) {
    let (_db, store, raw) = chain(backend).await;
    raw.exec("UPDATE audit_records SET ts_ms = ts_ms + 3600000 WHERE seq = 41")
        .await;
    let e = verify(&store).await;
    assert!(matches!(e, VerifyError::Timestamp { seq: 41 }), "{e:?}");
}

async fn truncated_tail_is_caught_by_the_checkpoint(backend: Backend) {
    let (_db, store, raw) = chain(backend).await;
    raw.exec("DELETE FROM audit_records WHERE seq > 44").await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BadCheckpoint { seq: 50 });
}

async fn rewritten_and_rehashed_suffix_is_caught_by_the_checkpoint(backend: Backend) {
    let (db, store, raw) = chain(backend).await;
    // The attacker edits record 45 and recomputes every hash after it: the chain is self-consistent,
    // but no longer matches the signed checkpoint at 50.
    rewrite_and_rehash(&db, &raw, &store, 45).await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BadCheckpoint { seq: 50 });
}

/// Changes record `seq`'s decision to "deny" and recomputes its hash and every later one, so the
/// chain is self-consistent again.
async fn rewrite_and_rehash(db: &TestDb, raw: &Raw, store: &Store, seq: i64) {
    let rows = store.audit_page(seq - 1, i64::MAX).await.unwrap();
    let mut prev = store.audit_page(seq - 2, 1).await.unwrap()[0].hash.clone();
    for r in &rows {
        let mut ev: airlock_core::audit::AuditEvent = serde_json::from_slice(&r.body).unwrap();
        if r.seq == seq {
            ev.decision = "deny".into();
        }
        let body = ev.canonical();
        let hash = chain_hash(&prev.clone().try_into().unwrap(), r.seq as u64, &body);
        let (p, h, b) = (db.bytes(&prev), db.bytes(&hash), db.bytes(&body));
        raw.exec(&format!(
            "UPDATE audit_records SET prev_hash = {p}, hash = {h}, body = {b} WHERE seq = {}",
            r.seq
        ))
        .await;
        prev = hash.to_vec();
    }
}

/// A writer with 12 records appended and not yet signed, and a raw connection without guards.
async fn running_writer(backend: Backend) -> (TestDb, Store, Raw, AuditHandle, JoinHandle<()>) {
    let (db, store) = new_db(backend).await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 100).await.unwrap();
    for n in 0..12 {
        audit.append(event(n)).unwrap();
    }
    audit.flush().await.unwrap();
    let raw = db.raw().await;
    raw.drop_guards().await;
    (db, store, raw, audit, task)
}

async fn unsigned_head_rewritten_under_a_running_writer_shows_as_a_broken_link(backend: Backend) {
    let (db, store, raw, audit, task) = running_writer(backend).await;
    rewrite_and_rehash(&db, &raw, &store, 12).await;
    verify_chain(&store, verify_sig, KEY).await.unwrap(); // consistent, and unsigned
    // The writer extends what it committed, not the rewritten head.
    audit.append(event(12)).unwrap();
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    assert_eq!(chain_err(verify(&store).await), ChainError::BrokenLink { seq: 13 });
}

async fn unsigned_tail_removed_under_a_running_writer_shows_as_a_gap(backend: Backend) {
    let (_db, store, raw, audit, task) = running_writer(backend).await;
    raw.exec("DELETE FROM audit_records WHERE seq > 9").await;
    audit.append(event(12)).unwrap();
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    assert_eq!(
        chain_err(verify(&store).await),
        ChainError::Gap {
            expected: 10,
            found: 13
        }
    );
}

async fn checkpoint_with_a_bad_signature_fails(backend: Backend) {
    let (db, store, raw) = chain(backend).await;
    raw.exec(&format!(
        "UPDATE audit_checkpoints SET signature = {} WHERE seq = 20",
        db.bytes(&[0])
    ))
    .await;
    assert_eq!(chain_err(verify(&store).await), ChainError::BadCheckpoint { seq: 20 });
}

async fn validly_signed_checkpoint_of_a_different_hash_fails(backend: Backend) {
    let (_db, store, raw) = chain(backend).await;
    raw.exec("DELETE FROM audit_checkpoints WHERE seq = 30").await;
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

async fn checkpoint_from_a_foreign_key_fails(backend: Backend) {
    // Written by a writer holding another key (a swapped signing key, or a forger's).
    let (_db, store) = new_db(backend).await;
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
