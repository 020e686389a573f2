//! Scale-out: several audit writers, each on a `Store` of its own (its own pool, as separate
//! gateway replicas have), appending to one database at once form one chain — no gap, no fork, no
//! event lost or doubled — that `verify_chain` accepts, with checkpoints signed as they go.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use airlock_core::audit::{AuditEvent, ChainError};
use airlock_store::{AuditHandle, AuditUnavailable, AuditWriter, Store, VerifyError, WriterOptions, verify_chain};
use common::{Backend, KEY, all_seqs, event, new_db, on_both_backends, pg, signer, verify_sig, wait_until};
use tokio::task::JoinHandle;

on_both_backends! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    replicas_appending_at_once_form_one_verified_chain,
}

const WRITERS: u64 = 3;
const EACH: u64 = 3_500;
const EVERY: u64 = 250;

/// Event `n` of writer `w`: its number says who sent it (`bytes_in` carries it).
fn event_of(w: u64, i: u64) -> AuditEvent {
    event(w * 1_000_000 + i)
}

async fn replica(store: Store, opts: WriterOptions) -> (AuditHandle, JoinHandle<()>) {
    AuditWriter::start_with(store, signer(KEY), opts).await.unwrap()
}

/// The `bytes_in` of every stored record, in seq order.
async fn stored_numbers(store: &Store) -> Vec<u64> {
    let rows = store.audit_page(0, i64::MAX).await.unwrap();
    rows.iter()
        .map(|r| serde_json::from_slice::<AuditEvent>(&r.body).unwrap().bytes_in)
        .collect()
}

async fn replicas_appending_at_once_form_one_verified_chain(backend: Backend) {
    let (db, store) = new_db(backend).await;
    // Small batches, no linger: many transactions, so the writers interleave all through the run.
    let opts = WriterOptions {
        checkpoint_every: EVERY,
        batch_max: 16,
        linger: Duration::ZERO,
        ..WriterOptions::default()
    };
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        writers.push(replica(db.reopen().await, opts.clone()).await);
    }

    // Appenders serialized properly never fail a commit, so never refuse a request. A failed
    // commit makes its writer unhealthy for at least the first backoff (10 ms): polling every
    // millisecond sees it.
    let handles: Vec<_> = writers.iter().map(|(h, _)| h.clone()).collect();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut unhealthy = 0;
        while stopped.try_recv().is_err() {
            unhealthy += handles.iter().filter(|h| !h.is_healthy()).count();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        unhealthy
    });

    let started = Instant::now();
    let producers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let audit = writers[w as usize].0.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    audit.append(event_of(w, i)).unwrap();
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                audit.flush().await.unwrap();
            })
        })
        .collect();
    for p in producers {
        // A liveness bound, not a performance one: writers that wedge must fail the test, not hang it.
        tokio::time::timeout(Duration::from_secs(300), p)
            .await
            .expect("the writers wedged")
            .unwrap();
    }
    let elapsed = started.elapsed();
    stop.send(()).unwrap();
    assert_eq!(watcher.await.unwrap(), 0, "a writer failed a commit under contention");
    let total = WRITERS * EACH;
    eprintln!("{backend:?}: {WRITERS} writers × {EACH} events committed in {elapsed:.2?}");

    // One chain 1..=N holding every accepted event exactly once.
    assert_eq!(all_seqs(&store).await, (1..=total as i64).collect::<Vec<_>>());
    let numbers = stored_numbers(&store).await;
    let expected: BTreeSet<u64> = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |i| event_of(w, i).bytes_in))
        .collect();
    assert_eq!(numbers.iter().copied().collect::<BTreeSet<_>>(), expected);
    assert_eq!(numbers.len(), expected.len(), "no event stored twice");
    // The writers really took turns (each writer's own events stay in its order).
    let switches = numbers
        .windows(2)
        .filter(|p| p[0] / 1_000_000 != p[1] / 1_000_000)
        .count();
    eprintln!("{backend:?}: the chain changes writer {switches} times");
    assert!(
        switches >= WRITERS as usize,
        "writers did not interleave ({switches} switches)"
    );
    for w in 0..WRITERS {
        let own: Vec<_> = numbers.iter().filter(|n| *n / 1_000_000 == w).collect();
        assert!(own.is_sorted(), "writer {w}'s events out of order");
    }

    // Every multiple of EVERY was signed once, by whichever writer's batch held it.
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.checkpoints), (total, total / EVERY));
    let signed: Vec<_> = store.checkpoints().await.unwrap().iter().map(|c| c.seq).collect();
    assert_eq!(
        signed,
        (1..=total / EVERY).map(|k| (k * EVERY) as i64).collect::<Vec<_>>()
    );

    // Each writer signs its own last record at shutdown: the head ends up signed.
    for (audit, task) in writers {
        audit.shutdown().await.unwrap();
        task.await.unwrap();
    }
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.unsigned_tail), (total, 0));

    // Tampering is still detected.
    let raw = db.raw().await;
    raw.drop_guards().await;
    raw.exec(&db.edit_body(4321, "\"allow\"", "\"deny\"")).await;
    match verify_chain(&store, verify_sig, KEY).await {
        Err(VerifyError::Chain(e)) => assert_eq!(e, ChainError::BadHash { seq: 4321 }),
        other => panic!("tampering not detected: {other:?}"),
    }
}

/// PostgreSQL stays up (other tests share it); this test's database stops taking connections
/// and its sessions are ended, as when the store is unreachable for every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_fail_closed_while_the_database_is_unreachable_and_recover_by_themselves() {
    let (db, store) = new_db(Backend::Postgres).await;
    let name = db.pg.as_ref().map(|d| d.name.clone()).unwrap();
    let opts = WriterOptions {
        checkpoint_every: 5,
        max_backoff: Duration::from_millis(50),
        ..WriterOptions::default()
    };
    let a = replica(db.reopen().await, opts.clone()).await;
    let b = replica(db.reopen().await, opts).await;
    let mut accepted = 0u64;
    let mut append = |audit: &AuditHandle| {
        let r = audit.append(event(accepted));
        if r.is_ok() {
            accepted += 1;
        }
        r
    };
    for _ in 0..4 {
        append(&a.0).unwrap();
        append(&b.0).unwrap();
    }
    a.0.flush().await.unwrap();
    b.0.flush().await.unwrap();

    let mut admin = pg::admin().await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    // Accepted while still healthy: kept in memory until the database returns.
    append(&a.0).unwrap();
    append(&b.0).unwrap();
    wait_until("both writers to report unhealthy", || {
        !a.0.is_healthy() && !b.0.is_healthy()
    })
    .await;
    assert_eq!(append(&a.0), Err(AuditUnavailable::Unhealthy));
    assert_eq!(append(&b.0), Err(AuditUnavailable::Unhealthy));

    sqlx::raw_sql(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    wait_until("both writers to recover", || a.0.is_healthy() && b.0.is_healthy()).await;
    for _ in 0..3 {
        append(&a.0).unwrap();
        append(&b.0).unwrap();
    }
    for (audit, task) in [a, b] {
        audit.shutdown().await.unwrap();
        task.await.unwrap();
    }

    assert_eq!(all_seqs(&store).await, (1..=accepted as i64).collect::<Vec<_>>());
    let numbers: BTreeSet<_> = stored_numbers(&store).await.into_iter().collect();
    assert_eq!(numbers, (0..accepted).collect(), "every accepted event, once");
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!((report.records, report.unsigned_tail), (accepted, 0));
}
