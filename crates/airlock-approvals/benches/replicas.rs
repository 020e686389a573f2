//! Approvals across three replicas: three hubs, each with its own pool (as separate gateway
//! processes have) on one PostgreSQL database (a real server: `scripts/postgres-for-tests.sh`
//! or `AIRLOCK_TEST_POSTGRES_URL`). Every approval is held on one replica and decided by a vote
//! cast on another, so every release crosses replicas through the store's notification.
//! - last vote → the request released on the holding replica, p50/p99 (one at a time);
//! - approvals decided per second with 8 and with 64 in flight (and the same latency under that load).
//!
//! `cargo bench -p airlock-approvals --bench replicas` (figures in docs/performance.md).
mod common;
#[path = "../../airlock-store/tests/common/pg.rs"]
mod pg;

use common::{pct, request};

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_approvals::{Hub, HubConfig, Verdict};
use airlock_channels::Person;
use airlock_channels::token::Decision;
use airlock_store::{AuditWriter, Signer, Store, WriterOptions};

const REPLICAS: usize = 3;

async fn replica(url: &str) -> Hub {
    let store = Store::open(url).await.unwrap();
    let signer: Signer = Arc::new(|m: &[u8]| (m.to_vec(), b"k".to_vec()));
    let opts = WriterOptions {
        queue_capacity: 100_000,
        ..WriterOptions::default()
    };
    let (audit, _) = AuditWriter::start_with(store.clone(), signer, opts).await.unwrap();
    let cfg = HubConfig {
        people: vec![Person {
            name: "alice".into(),
            roles: vec!["owner".into()],
            ids: Default::default(),
        }],
        channels: vec![],
        token_key: vec![9; 32],
        lease: Duration::from_secs(10),
    };
    Hub::start(cfg, store, audit).await.unwrap()
}

/// Holds request `i` on replica `i % 3`, approves it on the next replica; the time from the
/// vote to the holder's release.
async fn one(hubs: &[Hub], i: usize) -> Duration {
    let (holder, voter) = (&hubs[i % REPLICAS], &hubs[(i + 1) % REPLICAS]);
    let ticket = holder.hold(request(i)).await.unwrap();
    let id = ticket.id().to_string();
    let waiter = tokio::spawn(async move {
        let v = ticket.wait().await;
        (Instant::now(), v)
    });
    let t = Instant::now();
    voter.vote(&id, "alice", Decision::Approve, "bench").await.unwrap();
    let (released, v) = waiter.await.unwrap();
    assert!(matches!(v, Verdict::Approved { .. }), "{v:?}");
    released - t
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let db = pg::Database::create().await;
    Store::create(&db.url).await.unwrap();
    let mut hubs = Vec::new();
    for _ in 0..REPLICAS {
        hubs.push(replica(&db.url).await);
    }
    let hubs = Arc::new(hubs);

    const N: usize = 2000;
    let mut latency = Vec::with_capacity(N);
    for i in 0..N {
        let d = one(&hubs, i).await;
        if i >= 100 {
            latency.push(d);
        }
    }
    println!(
        "last vote (replica B) → request released (replica A), {} votes: p50 {:.2} ms, p99 {:.2} ms",
        latency.len(),
        pct(&mut latency, 0.50),
        pct(&mut latency, 0.99)
    );

    const TOTAL: usize = 6000;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(N));
    for in_flight in [8, 64] {
        let first = next.load(std::sync::atomic::Ordering::SeqCst);
        let start = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..in_flight {
            let (hubs, next) = (hubs.clone(), next.clone());
            workers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= first + TOTAL {
                        return mine;
                    }
                    mine.push(one(&hubs, i).await);
                }
            }));
        }
        let mut loaded = Vec::new();
        for w in workers {
            loaded.extend(w.await.unwrap());
        }
        let secs = start.elapsed().as_secs_f64();
        next.store(first + TOTAL, std::sync::atomic::Ordering::SeqCst);
        println!(
            "{TOTAL} approvals held on one replica and decided on another, {in_flight} in flight: \
             {:.0} approvals/s; last vote → released p50 {:.2} ms, p99 {:.2} ms",
            TOTAL as f64 / secs,
            pct(&mut loaded, 0.50),
            pct(&mut loaded, 0.99)
        );
    }
    for h in hubs.iter() {
        h.shutdown().await;
    }
}
