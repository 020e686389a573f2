//! Several `airlock serve` replicas over one PostgreSQL database (issue 5, scale-out), through
//! the harness in `support/replicas.rs`: what one replica was told (secrets, agent tokens) every
//! replica knows, a replica killed without warning can be started again, the replicas' audit
//! records form one verifiable chain, and a rate limit holds across them all (counted in the
//! shared store, failing closed while it is away).
mod support;

use sqlx::Connection;
use support::replicas::{Cable, Cluster, Options, until_status};
use support::*;

const REAL: &str = "real-key-replicas-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_secrets_tokens_and_ca_and_survive_a_kill() {
    let up = upstream(true).await;
    let mut cluster = Cluster::start(Options {
        replicas: 2,
        upstreams: &[&up],
        config: ONE_SECRET,
        secrets: &[("k", REAL)],
        agents: &["a"],
        ..Options::default()
    })
    .await;
    assert_eq!(cluster.len(), 2);
    assert_ne!(cluster[0].proxy, cluster[1].proxy);
    assert_eq!(cluster[0].ca_pem(), cluster[1].ca_pem(), "one CA by configuration");
    // Sealed and issued once, through replica 0's config: both unseal it and accept the token.
    cluster[0].assert_injects(&up, REAL).await;
    cluster[1].assert_injects(&up, REAL).await;

    // A crash: no flush, no final checkpoint. The other replica carries on; the killed one starts
    // again on the same data directory (its agent socket is stale, not in use).
    cluster.kill9(0);
    assert!(cluster[0].child.is_none());
    cluster[1].assert_injects(&up, REAL).await;
    cluster.restart(0);
    cluster[0].assert_injects(&up, REAL).await;

    // Each replica's control plane accepts the one control token (its hash is in the store).
    for g in &cluster.replicas {
        let r = reqwest::Client::new()
            .get(format!("http://{}/api/v1/agents", g.control))
            .bearer_auth(g.control_token())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    // Replica 0's first request may have died with it (queued, not yet committed); the three
    // after it were committed by replicas that stopped cleanly.
    let allowed = cluster
        .stop_and_verify(REAL)
        .iter()
        .filter(|r| r["decision"] == "allow" && r["status"] == 200)
        .count();
    assert!((3..=4).contains(&allowed), "{allowed} allowed records");
}

/// Agent `a` (secret `k`, [`ONE_SECRET`]) and agent `b`; `/limited` is rate limited at `rate`,
/// everything else on the upstream is allowed without a limit.
fn limited(rate: &str) -> String {
    format!(
        "{ONE_SECRET}[[agents]]\nname = \"b\"\n[[rules]]\nname = \"limited\"\nhosts = [\"localhost\"]\n\
         paths = [\"/limited\"]\nrate = {rate:?}\naction = \"allow\"\n"
    )
}

/// The answer's status and the reason in its JSON body (empty for an upstream's answer).
async fn answer(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client
        .get(url)
        .header("x-key", "airlock-k-placeholder")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["airlock"]["reason"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_the_replicas_and_only_limited_requests_count() {
    let up = upstream(true).await;
    let config = limited("5/min");
    let cluster = Cluster::start(Options {
        replicas: 2,
        upstreams: &[&up],
        config: &config,
        secrets: &[("k", REAL)],
        agents: &["a", "b"],
        ..Options::default()
    })
    .await;
    // Every take runs the table's BEFORE INSERT trigger once (also when it is refused, or updates
    // the row instead): a count of the store round trips the rate limits cost.
    let mut db = sqlx::PgConnection::connect(&cluster.db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE takes (n BIGINT NOT NULL); INSERT INTO takes VALUES (0);
         CREATE FUNCTION count_take() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN UPDATE takes SET n = n + 1; RETURN NEW; END $$;
         CREATE TRIGGER count_takes BEFORE INSERT ON rate_limits FOR EACH ROW EXECUTE FUNCTION count_take();",
    )
    .execute(&mut db)
    .await
    .unwrap();

    let a = [cluster[0].client("a"), cluster[1].client("a")];
    let limited = format!("https://localhost:{}/limited", up.port);
    let other = format!("https://localhost:{}/other", up.port);
    // Five per minute for agent a, whichever replica serves them.
    for i in 0..5 {
        assert_eq!(answer(&a[i % 2], &limited).await, (200, String::new()), "request {i}");
    }
    for (i, client) in a.iter().enumerate() {
        let (status, reason) = answer(client, &limited).await;
        assert_eq!(status, 429, "replica {i}: {reason}");
        assert!(
            reason.contains("rate limit of rule \"limited\" exceeded (5/60s)"),
            "{reason}"
        );
    }
    // Per agent: b has a budget of its own.
    let b = cluster[1].client("b").get(&limited).send().await.unwrap();
    assert_eq!(b.status(), 200);
    // Requests no rated rule matches pass, and cost no take.
    for i in 0..20 {
        assert_eq!(answer(&a[i % 2], &other).await.0, 200);
    }
    let takes: i64 = sqlx::query_scalar("SELECT n FROM takes")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(
        takes,
        5 + 2 + 1,
        "one take per rate-limited request, none for the others"
    );
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM rate_limits ORDER BY key")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(keys, ["a 5/60s limited", "b 5/60s limited"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_cut_rate_limited_requests_are_refused_and_the_replicas_recover() {
    let cable = Cable::to_test_server().await;
    let up = upstream(true).await;
    let config = limited("1000/min");
    let mut cluster = Cluster::start(Options {
        replicas: 2,
        upstreams: &[&up],
        config: &config,
        secrets: &[("k", REAL)],
        agents: &["a"],
        cable: Some(&cable),
        ..Options::default()
    })
    .await;
    let a = [cluster[0].client("a"), cluster[1].client("a")];
    let limited = format!("https://localhost:{}/limited", up.port);
    let other = format!("https://localhost:{}/other", up.port);
    let mut seen = Vec::new();
    for client in &a {
        for url in [&limited, &other] {
            assert!(until_status(client, url, 200, &mut seen).await, "{seen:?}");
        }
    }
    // Their records committed: neither writer has anything to retry when the cable is cut.
    // (Straight to the server, not through the cable.)
    let mut db = sqlx::PgConnection::connect(&cluster.db.url).await.unwrap();
    let mut committed = 0;
    for _ in 0..500 {
        committed = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_records")
            .fetch_one(&mut db)
            .await
            .unwrap() as usize;
        if committed >= seen.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(committed, seen.len(), "{seen:?}");
    let _ = db.close().await;

    cable.set(false);
    // Replica 0: a rate-limited request cannot be counted, so it is refused at once (its record
    // is queued: the writer has not failed yet); that record's commit fails, and from then on
    // the audit writer refuses everything, limited or not.
    let (status, reason) = answer(&a[0], &limited).await;
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("the rate limit of rule \"limited\" cannot be checked: the shared store is unavailable"),
        "{reason}"
    );
    let mut during = Vec::new();
    assert!(until_status(&a[0], &other, 503, &mut during).await, "{during:?}");
    let (status, reason) = answer(&a[0], &other).await;
    assert_eq!(
        (status, reason.as_str()),
        (503, "the audit log cannot be written; refusing all requests")
    );
    // Replica 1 has not touched the store since the cut: a request without a rate limit needs no
    // store round trip, so it is forwarded (its record waits in memory for the store); the
    // writer's failed commit then turns replica 1 to 503 as well.
    assert_eq!(answer(&a[1], &other).await.0, 200);
    assert!(until_status(&a[1], &other, 503, &mut during).await, "{during:?}");
    assert!(during.iter().all(|s| [200, 503].contains(s)), "{during:?}");
    let (status, reason) = answer(&a[1], &limited).await;
    assert_eq!(
        (status, reason.as_str()),
        (503, "the audit log cannot be written; refusing all requests")
    );

    cable.set(true);
    let mut after = Vec::new();
    for client in &a {
        for url in [&limited, &other] {
            assert!(
                until_status(client, url, 200, &mut after).await,
                "no recovery: {after:?}"
            );
        }
    }
    let metrics = reqwest::get(format!("http://{}/metrics", cluster[0].control))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("airlock_rate_limit_unavailable_total 1\n"),
        "{metrics}"
    );

    // The refusal was audited (committed once the store came back).
    let refused = cluster
        .stop_and_verify(REAL)
        .iter()
        .filter(|r| r["status"] == 503 && r["reason"].as_str().unwrap_or("").contains("cannot be checked"))
        .count();
    assert_eq!(refused, 1);
}
