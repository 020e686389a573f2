//! Rate limits in the store (`Store::rate_take`), for replicas that share them: the same GCRA as
//! the core's in-memory `RateLimiter`, decision for decision, and atomic — many takers on
//! separate pools (as separate replicas have) never get more than the burst through.

mod common;

use airlock_core::policy::{Rate, RateLimiter};
use airlock_store::Store;
use common::{Backend, new_db, on_both_backends};

on_both_backends! {
    #[tokio::test] a_burst_then_one_per_interval,
    #[tokio::test] the_same_decisions_as_the_in_memory_limiter,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] concurrent_takers_on_separate_pools_never_exceed_the_burst,
    #[tokio::test] prune_forgets_only_limits_that_are_full_again,
}

const T0: i64 = 1_700_000_000_000;

async fn take(store: &Store, key: &str, rate: Rate, now: i64) -> bool {
    let (interval, burst) = rate.gcra_ms();
    store.rate_take(key, interval as i64, burst as i64, now).await.unwrap()
}

fn rate(s: &str) -> Rate {
    Rate::parse(s).unwrap()
}

async fn a_burst_then_one_per_interval(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let r = rate("3/s"); // 333 ms apart, bursts of 3
    for i in 0..3 {
        assert!(take(&store, "a", r, T0).await, "take {i} of the burst");
    }
    assert!(!take(&store, "a", r, T0).await, "the fourth at once exceeds the burst");
    assert!(!take(&store, "a", r, T0 + 332).await, "one interval has not passed");
    // A refused take changes nothing: one interval after the burst, exactly one more fits.
    assert!(take(&store, "a", r, T0 + 333).await);
    assert!(!take(&store, "a", r, T0 + 333).await);
    // Keys are independent.
    assert!(take(&store, "b", r, T0).await);
    // Idle for a full window: the whole burst again, not more.
    let later = T0 + 10_000;
    for _ in 0..3 {
        assert!(take(&store, "a", r, later).await);
    }
    assert!(!take(&store, "a", r, later).await);
    // Not even one request fits a burst shorter than the interval; nothing is stored for it.
    assert!(!store.rate_take("c", 10, 5, T0).await.unwrap());
    assert!(take(&store, "c", r, T0).await);
}

/// A deterministic walk over two keys, three rates and irregular times: the store decides
/// every take as `RateLimiter::check` does.
async fn the_same_decisions_as_the_in_memory_limiter(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let rates = [rate("3/s"), rate("5/min"), rate("7/s")];
    let mut memory = RateLimiter::default();
    let mut now = T0;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let (mut allowed, mut refused) = (0, 0);
    for step in 0..600 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        now += (x % 400) as i64; // 0–399 ms apart, bursts of simultaneous takes included
        let which = (x >> 20) as usize % rates.len();
        let agent = if (x >> 30) & 1 == 0 { "a" } else { "b" };
        let key = format!("{agent} {which}");
        let want = memory.check(which, agent, rates[which], now as u64);
        let got = take(&store, &key, rates[which], now).await;
        assert_eq!(got, want, "step {step}: {key} at +{} ms", now - T0);
        if got { allowed += 1 } else { refused += 1 }
    }
    assert!(allowed > 100 && refused > 100, "{allowed} allowed, {refused} refused");
}

async fn concurrent_takers_on_separate_pools_never_exceed_the_burst(backend: Backend) {
    const POOLS: usize = 4;
    const EACH: usize = 40;
    let (db, _store) = new_db(backend).await;
    let r = rate("25/hour"); // nothing comes back during the test: the burst is all there is
    let mut stores = Vec::new();
    for _ in 0..POOLS {
        stores.push(db.reopen().await);
    }
    let mut tasks = Vec::new();
    for store in &stores {
        for i in 0..EACH {
            let store = store.clone();
            // Everyone at (nearly) the same time, on one key.
            tasks.push(tokio::spawn(async move {
                take(&store, "shared", r, T0 + (i % 3) as i64).await
            }));
        }
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 25, "{} takers, one burst of 25", POOLS * EACH);
}

async fn prune_forgets_only_limits_that_are_full_again(backend: Backend) {
    let (db, store) = new_db(backend).await;
    let r = rate("2/min"); // 30 s apart
    assert!(take(&store, "old", r, T0).await); // full again from T0 + 30 s
    assert!(take(&store, "new", r, T0 + 40_000).await); // until T0 + 70 s
    assert!(take(&store, "new", r, T0 + 40_000).await);
    assert_eq!(store.rate_prune(T0 + 40_000).await.unwrap(), 1);
    let raw = db.raw().await;
    let rows = match &raw {
        common::Raw::Sqlite(p) => sqlx::query_scalar::<_, String>("SELECT key FROM rate_limits")
            .fetch_all(p)
            .await
            .unwrap(),
        common::Raw::Postgres(p) => sqlx::query_scalar::<_, String>("SELECT key FROM rate_limits")
            .fetch_all(p)
            .await
            .unwrap(),
    };
    assert_eq!(rows, vec!["new".to_string()]);
    // The limit that was kept still holds; the pruned one starts afresh, as it would have.
    assert!(!take(&store, "new", r, T0 + 40_000).await);
    assert!(take(&store, "old", r, T0 + 40_000).await);
    assert!(take(&store, "old", r, T0 + 40_000).await);
    assert!(!take(&store, "old", r, T0 + 40_000).await);
}
