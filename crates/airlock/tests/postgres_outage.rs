//! PostgreSQL goes away under load and comes back: the gateway refuses what it cannot audit
//! (503, clear error, no panic), forwards nothing unaudited, and recovers by itself — no
//! restart — with every accepted record in one verifiable chain.
//!
//! The outage is a real one as the gateway sees it: its store URL points at a TCP forwarder in
//! front of the test server, which resets every connection and refuses new ones while "down"
//! (stopping the shared server itself would break the other tests running against it).
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use support::replicas::{Cable, init, pg, status, until_status};
use support::*;

const REAL: &str = "real-key-outage-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_closed_while_postgres_is_away_and_recover_when_it_returns() {
    let db = pg::Database::create().await;
    let cable = Cable::to_test_server().await;
    let via_cable = cable.url(&db.url);

    let up = upstream(true).await;
    let dir = tempfile::tempdir().unwrap();
    let o = init(dir.path(), &via_cable);
    assert!(o.status.success(), "{}", text(&o));
    let mut gw = serve_one_secret_on(dir, &via_cable, &up, REAL);
    let client = gw.client("a");
    let url = format!("https://localhost:{}/mail", up.port);

    let mut seen = Vec::new();
    assert!(until_status(&client, &url, 200, &mut seen).await, "{seen:?}");

    // Load in the background all along, so the cut lands between and during requests.
    let loading = Arc::new(AtomicBool::new(true));
    let load = {
        let (client, url, loading) = (client.clone(), url.clone(), loading.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while loading.load(Ordering::Relaxed) {
                statuses.push(status(&client, &url).await);
            }
            statuses
        })
    };

    cable.set(false);
    let forwarded_before = up.requests().len();
    let mut during = Vec::new();
    assert!(
        until_status(&client, &url, 503, &mut during).await,
        "no 503 while the store is away: {during:?}"
    );
    // While away: refused, and refused with a reason an operator can act on.
    let r = client
        .get(&url)
        .header("x-key", "airlock-k-placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let why = r.text().await.unwrap();
    assert!(why.contains("audit"), "{why}");
    let forwarded_while_away = up.requests().len();

    cable.set(true);
    let mut after = Vec::new();
    assert!(
        until_status(&client, &url, 200, &mut after).await,
        "the gateway did not recover by itself: {after:?}"
    );
    loading.store(false, Ordering::Relaxed);
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "only 200 or 503, never a dropped connection or another error: {statuses:?}"
    );
    assert!(forwarded_while_away >= forwarded_before);

    gw.stop();
    let logs = gw.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(!logs.contains(REAL), "the real key reached the log");
    // Every record the gateway accepted, including those queued during the outage, is in one
    // intact chain, and every forwarded request has its record.
    let o = gw.cli(&["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    let records = gw.audit();
    let summary: Vec<String> = records
        .iter()
        .map(|r| format!("{}/{}/{}", r["kind"], r["decision"], r["status"]))
        .collect();
    let allowed = records
        .iter()
        .filter(|r| r["decision"] == "allow" && r["status"] == 200)
        .count();
    assert!(
        allowed >= up.requests().len(),
        "{allowed} allowed records for {} forwarded requests: {summary:?}",
        up.requests().len()
    );
}

/// PostgreSQL stops answering (connections open, nothing comes back): within a couple of
/// seconds requests are refused with 503 and `/readyz` says so while `/healthz` (liveness) stays
/// 200; when it answers again, both recover by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_postgres_is_refused_within_seconds_and_readyz_reports_it() {
    let db = pg::Database::create().await;
    let cable = Cable::to_test_server().await;
    let via_cable = cable.url(&db.url);
    let up = upstream(true).await;
    let dir = tempfile::tempdir().unwrap();
    let o = init(dir.path(), &via_cable);
    assert!(o.status.success(), "{}", text(&o));
    let mut gw = serve_one_secret_on(dir, &via_cable, &up, REAL);
    let client = gw.client("a");
    let url = format!("https://localhost:{}/mail", up.port);
    let plain = reqwest::Client::new();
    let probe = |path: &str| {
        let (plain, u) = (plain.clone(), format!("http://{}{path}", gw.control));
        async move { plain.get(u).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    let mut seen = Vec::new();
    assert!(until_status(&client, &url, 200, &mut seen).await, "{seen:?}");
    assert_eq!(probe("/readyz").await, 200);

    cable.silence(true);
    let cut = std::time::Instant::now();
    let mut during = Vec::new();
    assert!(
        until_status(&client, &url, 503, &mut during).await,
        "no 503 while the store is silent: {during:?}"
    );
    let took = cut.elapsed();
    assert!(
        took < std::time::Duration::from_secs(6),
        "503 only after {took:?} (the store timeout is 2 s): {during:?}"
    );
    assert_eq!(probe("/readyz").await, 503);
    assert_eq!(probe("/healthz").await, 200, "liveness is not readiness");

    cable.silence(false);
    let mut after = Vec::new();
    assert!(
        until_status(&client, &url, 200, &mut after).await,
        "the gateway did not recover by itself: {after:?}"
    );
    let mut ready = 0;
    for _ in 0..100 {
        ready = probe("/readyz").await;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 200, "/readyz did not recover");
    gw.stop();
    let o = gw.cli(&["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
}
