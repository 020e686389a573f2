//! Approvals across `airlock serve` replicas sharing one PostgreSQL database (real processes, a
//! real server, the Telegram fake as the platform): a decision taken on any replica releases
//! the request on the one holding it, once; a replica killed with `kill -9` forwards nothing it
//! held and a survivor closes its cards; the platform feed moves to a survivor without losing
//! or double-applying a click.
mod e2e;
mod support;

use std::time::Duration;

use e2e::fake_tg::telegram::FakeTelegram;
use e2e::*;
use serde_json::Value;
use support::replicas::{Cluster, Options};
use support::*;

const ALICE: &str = "[people.alice]\nroles = [\"owner\"]\ntelegram = \"1001\"\n\n";

fn config(tg: &FakeTelegram) -> String {
    config_with(tg, ALICE)
}

fn config_with(tg: &FakeTelegram, people: &str) -> String {
    format!(
        "[[agents]]\nname = \"mailbot\"\nsecrets = [\"gmail\"]\n\n[secrets.gmail]\nhosts = [\"localhost\"]\n\
         header = \"Authorization\"\nformat = \"Bearer {{secret}}\"\nplaceholder = \"airlock-gmail\"\n\n\
         [approvals]\nmax_body = 1048576\n\n{people}{}{MAIL_RULE}",
        telegram_channel(tg)
    )
}

async fn cluster(up: &Upstream, tg: &FakeTelegram, replicas: usize) -> Cluster {
    cluster_with(up, &config(tg), replicas).await
}

async fn cluster_with(up: &Upstream, config: &str, replicas: usize) -> Cluster {
    Cluster::start(Options {
        replicas,
        upstreams: &[up],
        config,
        secrets: &[("gmail", REAL)],
        agents: &["mailbot"],
        env: ENV,
        // 2 s was too short for a 2-core machine also compiling: a renewal that slipped let the
        // other replica abandon a held approval mid-test.
        store: "lease = \"4s\"",
        ..Default::default()
    })
    .await
}

/// Mail number `n`, so every forwarded request can be told apart.
fn mail(n: usize) -> Vec<u8> {
    format!(r#"{{"raw":"VG86IGJvYkBleGFtcGxlLmNvbQ0KU3ViamVjdDogbWFpbCB7bn0NCg0KaGk","n":{n}}}"#).into_bytes()
}

/// The approve token of every card Telegram received, by approval id.
fn approve_tokens(tg: &FakeTelegram) -> Vec<(String, String)> {
    tg.calls("sendMessage")
        .iter()
        .map(|m: &Value| {
            let buttons = tg_buttons(&m["reply_markup"]);
            let id = airlock_channels::token::Claims::parse(&buttons[0]).unwrap().id;
            let t = tokens_for(&id, buttons);
            (id, t.approve)
        })
        .collect()
}

async fn pg(c: &Cluster) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(&c.db.url)
        .await
        .unwrap()
}

async fn count(c: &Cluster, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut pg(c).await).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_on_one_replica_releases_the_request_held_on_another() {
    let (tg, up) = (FakeTelegram::start().await, upstream(true).await);
    let mut c = cluster(&up, &tg, 2).await;
    // The other replica's dashboard hears of the new request at once.
    let mut events = Events::open(&c[1]).await;
    let agent = send(&c[0], up.port, MAIL_PATH, "application/json", mail(1));
    let id = events.next("pending").await;
    assert!(!up.contacted());
    let o = c[1].control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests().len(), 1, "forwarded once");
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    // Both replicas show the decision, and a second vote anywhere changes nothing.
    for i in 0..2 {
        let show = c[i].control_cli(&["approvals", "show", &id]);
        assert!(
            text(&show).to_lowercase().contains("approved by alice"),
            "{}",
            text(&show)
        );
    }
    let o = c[0].control_cli(&["approvals", "deny", &id, "--as", "alice"]);
    assert!(
        !o.status.success() && text(&o).contains("already decided"),
        "{}",
        text(&o)
    );
    c.stop_and_verify(REAL);
}

/// A vote through replica `gw`'s control API; the HTTP status.
async fn vote(gw: &Gateway, id: &str, person: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/api/v1/approvals/{id}/vote", gw.control))
        .bearer_auth(gw.control_token())
        .json(&serde_json::json!({ "person": person, "decision": "approve" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_voting_at_the_same_instant_on_two_replicas_forward_once() {
    const ROUNDS: usize = 15;
    let (tg, up) = (FakeTelegram::start().await, upstream(true).await);
    let bob = "[people.bob]\nroles = [\"owner\"]\ntelegram = \"1002\"\n\n";
    let mut c = cluster_with(&up, &config_with(&tg, &format!("{ALICE}{bob}")), 2).await;
    let mut events = Events::open(&c[0]).await;
    let mut seen = std::collections::HashSet::new();
    for round in 0..ROUNDS {
        let agent = send(&c[round % 2], up.port, MAIL_PATH, "application/json", mail(round));
        // The stream may repeat an earlier approval's "pending" (the replica that holds it and the
        // cluster's notice of it both announce it): this round's is the first id not seen yet.
        let id = loop {
            let id = events.next("pending").await;
            if seen.insert(id.clone()) {
                break id;
            }
        };
        // Alice on one replica, Bob on the other, at once: either decides, never both.
        let (a, b) = tokio::join!(vote(&c[0], &id, "alice"), vote(&c[1], &id, "bob"));
        let mut codes = [a, b];
        codes.sort();
        assert_eq!(
            codes,
            [200, 409],
            "round {round}: one decides, the other finds it decided"
        );
        let r = tokio::time::timeout(Duration::from_secs(10), agent)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(up.requests().len(), round + 1, "round {round}: forwarded once");
    }
    assert_eq!(count(&c, "SELECT count(*) FROM approval_votes").await, ROUNDS as i64);
    c.stop_and_verify(REAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_holding_100_approvals_forwards_none_and_a_survivor_closes_their_cards() {
    const HELD: usize = 100;
    let (tg, up) = (FakeTelegram::start().await, upstream(true).await);
    let mut c = cluster(&up, &tg, 2).await;
    let agents: Vec<_> = (0..HELD)
        .map(|n| try_send(&c[0], up.port, MAIL_PATH, "application/json", mail(n)))
        .collect();
    tg.wait_until("every card sent", |f| f.calls("sendMessage").len() == HELD)
        .await;
    let ids: Vec<String> = approve_tokens(&tg).into_iter().map(|(id, _)| id).collect();
    // A card is updatable once its message id is stored (a card delivered by a replica that
    // dies before storing where it landed cannot be found again).
    for _ in 0..500 {
        if count(&c, "SELECT count(*) FROM approval_messages").await == HELD as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // rows appear without an event
    }
    c.kill9(0);
    for a in agents {
        let answered = a.await.unwrap();
        assert!(
            answered.is_err(),
            "an agent got an answer from a dead replica: {answered:?}"
        );
    }
    // After the lease (4 s), the survivor abandons every one and edits every card.
    tg.wait_until("every card says abandoned", |f| {
        (1..=HELD as i64).all(|m| f.message("1001", m).is_some_and(|(text, _)| text.contains("Abandoned")))
    })
    .await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM approvals WHERE state = 'abandoned'").await,
        HELD as i64
    );
    for id in ids.iter().take(5) {
        let o = c[1].control_cli(&["approvals", "approve", id, "--as", "alice"]);
        assert!(!o.status.success() && text(&o).contains("abandoned"), "{}", text(&o));
    }
    assert!(!up.contacted(), "nothing held by the dead replica was forwarded");
    c.replicas.remove(0);
    c.stop_and_verify(REAL);
}

/// The replica that logged taking the feed lock.
fn feed_reader(c: &Cluster) -> Option<usize> {
    (0..c.len()).find(|&i| c[i].logs().contains("now reads the platforms' feeds"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_moves_to_a_survivor_under_a_stream_of_clicks_none_lost_none_applied_twice() {
    const CLICKS: usize = 40;
    let (tg, up) = (FakeTelegram::start().await, upstream(true).await);
    let mut c = cluster(&up, &tg, 2).await;
    let mut leader = None;
    for _ in 0..100 {
        leader = feed_reader(&c);
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // a log line: nothing to await
    }
    let leader = leader.expect("one replica reads the feed");
    let holder = 1 - leader;
    // Every request is held by the replica that survives; the leader only reads clicks.
    let agents: Vec<_> = (0..CLICKS)
        .map(|n| send(&c[holder], up.port, MAIL_PATH, "application/json", mail(n)))
        .collect();
    tg.wait_until("every card sent", |f| f.calls("sendMessage").len() == CLICKS)
        .await;
    let tokens = approve_tokens(&tg);
    // Clicks arrive as a stream; the leader dies in the middle of it.
    for (i, (_, token)) in tokens.iter().enumerate() {
        tg.push_click(1001, token);
        if i == CLICKS / 3 {
            c.kill9(leader);
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // pacing the stream
    }
    for a in agents {
        let r = tokio::time::timeout(Duration::from_secs(30), a).await.unwrap().unwrap();
        assert_eq!(r.status(), 200, "a click was lost");
    }
    // Each request forwarded exactly once, each approval decided once by one vote.
    let mut bodies: Vec<Vec<u8>> = up.requests().into_iter().map(|s| s.body).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!((up.requests().len(), bodies.len()), (CLICKS, CLICKS));
    assert_eq!(
        count(&c, "SELECT count(*) FROM approvals WHERE state = 'approved'").await,
        CLICKS as i64
    );
    assert_eq!(count(&c, "SELECT count(*) FROM approval_votes").await, CLICKS as i64);
    assert!(feed_reader_after(&c, holder), "the survivor took the feed");
    tg.wait_until("every update confirmed", |f| f.unconfirmed() == 0).await;
    c.replicas.remove(leader);
    c.stop_and_verify(REAL);
}

fn feed_reader_after(c: &Cluster, i: usize) -> bool {
    c[i].logs().contains("now reads the platforms' feeds")
}
