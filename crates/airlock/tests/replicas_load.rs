//! Three replicas over one PostgreSQL database under load (issue 5, scale-out): every allowed
//! request is forwarded and audited exactly once in one chain, and a database outage in the
//! middle of the load is refused cleanly (200 or 503, never a dropped connection) and recovered
//! from without a restart. Throughput is measured separately (docs/performance.md), not here.
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::replicas::{Cable, Cluster, Options, until_status};
use support::*;
use tokio::task::JoinSet;

const REAL: &str = "real-key-load-0123456789";
const REPLICAS: usize = 3;
const CONCURRENCY: usize = 32;

/// [`ONE_SECRET`], plus a rate-limited path whose limit is never reached: its requests each
/// take from the shared limit in the database.
fn config() -> String {
    format!(
        "{ONE_SECRET}[[rules]]\nname = \"limited\"\nhosts = [\"localhost\"]\npaths = [\"/limited\"]\n\
         rate = \"100000/hour\"\naction = \"allow\"\n"
    )
}

async fn cluster(cable: Option<&Cable>, up: &Upstream) -> Cluster {
    Cluster::start(Options {
        replicas: REPLICAS,
        upstreams: &[up],
        config: &config(),
        secrets: &[("k", REAL)],
        agents: &["a"],
        cable,
        ..Options::default()
    })
    .await
}

/// A status per request, by replica; 0 for a request that got no HTTP answer.
type Statuses = Vec<Vec<u16>>;

/// `CONCURRENCY` workers, worker `w` on replica `w % REPLICAS`, request `i` to `urls[i % len]`;
/// they stop after `total` requests, or once `run` is false.
fn load(cluster: &Cluster, urls: Vec<String>, total: usize, run: Arc<AtomicBool>) -> JoinSet<(usize, Vec<u16>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let urls = Arc::new(urls);
    let mut workers = JoinSet::new();
    for w in 0..CONCURRENCY {
        let replica = w % REPLICAS;
        let client = cluster[replica].client("a");
        let (next, urls, run) = (next.clone(), urls.clone(), run.clone());
        workers.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || !run.load(Ordering::Relaxed) {
                    return (replica, seen);
                }
                seen.push(support::replicas::status(&client, &urls[i % urls.len()]).await);
            }
        });
    }
    workers
}

async fn by_replica(mut workers: JoinSet<(usize, Vec<u16>)>) -> Statuses {
    let mut out = vec![Vec::new(); REPLICAS];
    while let Some(done) = workers.join_next().await {
        let (replica, seen) = done.unwrap();
        out[replica].extend(seen);
    }
    out
}

/// Waits until each replica (a client each in `watch`) has answered `want` to both `urls`.
async fn every_replica_answers(watch: &[reqwest::Client], urls: [&String; 2], want: u16, seen: &mut Vec<u16>) {
    for (i, c) in watch.iter().enumerate() {
        for url in urls {
            let answered = until_status(c, url, want, seen).await;
            assert!(answered, "replica {i} never answered {url} with {want}: {seen:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_over_three_replicas_are_each_forwarded_and_audited_once() {
    const TOTAL: usize = 10_000;
    let up = upstream(true).await;
    let mut cluster = cluster(None, &up).await;
    let url = format!("https://localhost:{}/load", up.port);
    let statuses = by_replica(load(&cluster, vec![url], TOTAL, Arc::new(AtomicBool::new(true)))).await;
    for (i, s) in statuses.iter().enumerate() {
        assert!(s.len() > TOTAL / 4, "replica {i} served {} requests", s.len());
        let other: Vec<_> = s.iter().filter(|&&s| s != 200).collect();
        assert!(other.is_empty(), "replica {i}: not 200: {other:?}");
    }
    assert_eq!(statuses.iter().map(Vec::len).sum::<usize>(), TOTAL);
    assert_eq!(up.requests().len(), TOTAL);
    assert!(up.requests().iter().all(|r| r.header("x-key") == Some(REAL)));

    // One record per request, in one chain numbered 1..=TOTAL without a gap or a repeat.
    let records = cluster.stop_and_verify(REAL);
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=TOTAL as i64).collect::<Vec<_>>());
    let forwarded = records
        .iter()
        .filter(|r| r["kind"] == "request" && r["decision"] == "allow" && r["status"] == 200 && r["path"] == "/load")
        .count();
    assert_eq!(forwarded, TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_refuse_cleanly_while_the_database_is_cut_and_recover_without_a_restart() {
    let cable = Cable::to_test_server().await;
    let up = upstream(true).await;
    let mut cluster = cluster(Some(&cable), &up).await;
    let plain = format!("https://localhost:{}/load", up.port);
    let limited = format!("https://localhost:{}/limited", up.port);
    let forwarded = || up.seen.lock().unwrap().len();
    let pids: Vec<u32> = cluster
        .replicas
        .iter()
        .map(|g| g.child.as_ref().unwrap().id())
        .collect();

    let run = Arc::new(AtomicBool::new(true));
    let workers = load(&cluster, vec![plain.clone(), limited.clone()], usize::MAX, run.clone());
    // Watchers, one client per replica besides the load: the outage begins and ends for each
    // replica when it answers so (not after a sleep).
    let watch: Vec<reqwest::Client> = cluster.replicas.iter().map(|g| g.client("a")).collect();
    let mut seen = Vec::new();
    every_replica_answers(&watch, [&plain, &plain], 200, &mut seen).await;
    cable.set(false);
    every_replica_answers(&watch, [&plain, &limited], 503, &mut seen).await;
    let forwarded_while_cut = forwarded();
    cable.set(true);
    every_replica_answers(&watch, [&plain, &limited], 200, &mut seen).await;
    // Load after recovery too, on every replica.
    let after = forwarded();
    while forwarded() < after + 300 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    run.store(false, Ordering::Relaxed);
    let statuses = by_replica(workers).await;

    for (i, s) in statuses.iter().enumerate() {
        let ok = s.iter().filter(|&&s| s == 200).count();
        let refused = s.iter().filter(|&&s| s == 503).count();
        assert_eq!(
            ok + refused,
            s.len(),
            "replica {i}: only 200 or 503, never a reset: {s:?}"
        );
        assert!(ok > 0 && refused > 0, "replica {i}: {ok} forwarded, {refused} refused");
    }
    assert!(seen.iter().all(|s| [200, 503].contains(s)), "{seen:?}");
    assert!(forwarded() > forwarded_while_cut);
    for (i, g) in cluster.replicas.iter_mut().enumerate() {
        let child = g.child.as_mut().unwrap();
        assert_eq!(child.id(), pids[i], "replica {i} was restarted");
        assert!(child.try_wait().unwrap().is_none(), "replica {i} exited");
    }

    // Every forwarded request has its record (those forwarded just before a replica noticed the
    // cut were kept in memory and committed after it), in one intact chain.
    let records = cluster.stop_and_verify(REAL);
    let allowed = records
        .iter()
        .filter(|r| r["decision"] == "allow" && r["status"] == 200)
        .count();
    let answered_200 = statuses.iter().flatten().chain(&seen).filter(|&&s| s == 200).count();
    assert_eq!(allowed, forwarded());
    assert_eq!(allowed, answered_200);
}
