//! The audit writer: group commit, checkpoints, flush/shutdown, fail-closed behaviour.

mod common;

use std::time::Duration;

use airlock_store::{AuditUnavailable, AuditWriter, WriterOptions, verify_chain};
use common::{Backend, KEY, all_seqs, event, new_db, on_both_backends, signer, verify_sig, wait_until};

on_both_backends! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    ten_thousand_events_from_eight_tasks_form_one_verified_chain,
    #[tokio::test] shutdown_signs_the_head_and_a_restart_continues_the_chain,
    #[tokio::test] empty_log_shutdown_writes_nothing,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    failing_commits_mark_unhealthy_refuse_appends_and_retry_without_gaps,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_full_queue_refuses_appends_and_loses_nothing,
    #[tokio::test] writer_refuses_to_extend_a_truncated_log,
}

async fn ten_thousand_events_from_eight_tasks_form_one_verified_chain(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 1000).await.unwrap();

    let mut producers = Vec::new();
    for t in 0..8u64 {
        let audit = audit.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..1250u64 {
                audit.append(event(t * 10_000 + i)).unwrap();
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    audit.flush().await.unwrap();

    assert_eq!(all_seqs(&store).await, (1..=10_000).collect::<Vec<_>>());
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!(
        (
            report.records,
            report.head_seq,
            report.checkpoints,
            report.unsigned_tail
        ),
        (10_000, 10_000, 10, 0)
    );
    let (head_seq, head_hash) = store.audit_head().await.unwrap().unwrap();
    assert_eq!((head_seq, head_hash), (10_000, report.head_hash.to_vec()));

    audit.shutdown().await.unwrap();
    task.await.unwrap();
    assert_eq!(
        store.checkpoints().await.unwrap().len(),
        10,
        "head already signed: no extra checkpoint"
    );
}

async fn shutdown_signs_the_head_and_a_restart_continues_the_chain(backend: Backend) {
    let (db, store) = new_db(backend).await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 10).await.unwrap();
    for n in 0..15 {
        audit.append(event(n)).unwrap();
    }
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    assert!(!audit.is_healthy());
    assert_eq!(audit.append(event(99)), Err(AuditUnavailable::Stopped));
    assert_eq!(audit.flush().await, Err(AuditUnavailable::Stopped));
    let seqs: Vec<_> = store.checkpoints().await.unwrap().iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [10, 15]);
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.checkpoints, report.unsigned_tail), (15, 2, 0));
    store.close().await;

    let store = db.reopen().await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 10).await.unwrap();
    for n in 15..23 {
        audit.append(event(n)).unwrap();
    }
    audit.flush().await.unwrap();
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.checkpoints, report.unsigned_tail), (23, 3, 3));
    drop(audit); // dropping every handle also ends the task with a signed head
    task.await.unwrap();
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.checkpoints, report.unsigned_tail), (23, 4, 0));
}

async fn empty_log_shutdown_writes_nothing(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 10).await.unwrap();
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    assert!(store.checkpoints().await.unwrap().is_empty());
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.head_seq, report.unsigned_tail), (0, 0, 0));
}

async fn failing_commits_mark_unhealthy_refuse_appends_and_retry_without_gaps(backend: Backend) {
    let (db, store) = new_db(backend).await;
    let opts = WriterOptions {
        checkpoint_every: 7,
        max_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let (audit, task) = AuditWriter::start_with(store.clone(), signer(KEY), opts).await.unwrap();
    for n in 0..5 {
        audit.append(event(n)).unwrap();
    }
    audit.flush().await.unwrap();

    // Every insert into the audit table now fails, as a full disk or a broken database would.
    let raw = db.raw().await;
    raw.exec(db.pick(
        "CREATE TRIGGER block BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        "CREATE FUNCTION block() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$; \
         CREATE TRIGGER block BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION block();",
    ))
    .await;
    let mut accepted = 5u64;
    for n in 5..20 {
        if audit.append(event(n)).is_ok() {
            accepted += 1;
        }
    }
    wait_until("the writer to report unhealthy", || !audit.is_healthy()).await;
    // Fail closed: nothing new is accepted while commits fail.
    assert_eq!(audit.append(event(100)), Err(AuditUnavailable::Unhealthy));
    assert_eq!(
        store.audit_head().await.unwrap().map(|h| h.0),
        Some(5),
        "nothing landed while blocked"
    );

    raw.exec(db.pick("DROP TRIGGER block;", "DROP TRIGGER block ON audit_records;"))
        .await;
    wait_until("the retried batch to land", || audit.is_healthy()).await;
    audit.append(event(200)).unwrap();
    accepted += 1;
    audit.flush().await.unwrap();

    let expected: Vec<i64> = (1..=accepted as i64).collect();
    assert_eq!(
        all_seqs(&store).await,
        expected,
        "every accepted event landed, in order, without gaps"
    );
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!(report.records, accepted);
    assert_eq!(
        report.checkpoints,
        accepted / 7,
        "checkpoints queued during the outage landed too"
    );
    audit.shutdown().await.unwrap();
    task.await.unwrap();
}

async fn a_full_queue_refuses_appends_and_loses_nothing(backend: Backend) {
    let (db, store) = new_db(backend).await;
    let opts = WriterOptions {
        queue_capacity: 4,
        batch_max: 2,
        ..Default::default()
    };
    let (audit, task) = AuditWriter::start_with(store.clone(), signer(KEY), opts).await.unwrap();

    // Another connection holds the write lock, so the writer's commit waits.
    let raw = db.raw().await;
    let lock = raw.lock_audit_table().await;

    let mut accepted = 0u64;
    let mut refused = None;
    for n in 0..1000 {
        match audit.append(event(n)) {
            Ok(()) => accepted += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(refused, Some(AuditUnavailable::QueueFull));
    assert!(
        accepted <= 4 + 2,
        "queue capacity plus one batch in flight, got {accepted}"
    );

    lock.release().await;
    audit.flush().await.unwrap();
    assert_eq!(all_seqs(&store).await, (1..=accepted as i64).collect::<Vec<_>>());
    audit.shutdown().await.unwrap();
    task.await.unwrap();
}

async fn writer_refuses_to_extend_a_truncated_log(backend: Backend) {
    let (db, store) = new_db(backend).await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 10).await.unwrap();
    for n in 0..12 {
        audit.append(event(n)).unwrap();
    }
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    let raw = db.raw().await;
    raw.drop_guards().await;
    raw.exec("DELETE FROM audit_records WHERE seq > 8").await;
    match AuditWriter::start(store, signer(KEY), 10).await {
        Err(airlock_store::StoreError::Corrupt { seq: Some(12), what }) => {
            assert!(what.contains("truncated"), "{what}")
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}
