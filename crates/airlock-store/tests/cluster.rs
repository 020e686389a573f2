//! What replicas coordinate through the store: votes counted once under the approval's lock
//! (separate pools racing, as replicas do), replica leases and the rows survivors sweep, change
//! notifications, and the exclusive lock of the one feed reader.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use airlock_store::{ApprovalRow, Heard, Store, StoreError, Tally, VoteRow, approval_topic};
use common::{Backend, new_db, on_both_backends};

on_both_backends! {
    #[tokio::test] a_vote_is_refused_recorded_or_decides,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] racing_voters_on_separate_pools_decide_once,
    #[tokio::test] leases_tell_orphans_from_held_approvals,
}

fn approval(id: &str, replica: &str, expires_ms: i64) -> ApprovalRow {
    ApprovalRow {
        id: id.into(),
        agent: "mailbot".into(),
        host: "example.com".into(),
        digest: "ab".repeat(32),
        card: b"{}".to_vec(),
        state: "pending".into(),
        created_ms: 1,
        expires_ms,
        decided_ms: None,
        status: None,
        replica: Some(replica.into()),
    }
}

fn vote(id: &str, person: &str, at_ms: i64) -> VoteRow {
    VoteRow {
        approval_id: id.into(),
        person: person.into(),
        approve: true,
        grant: person.ends_with('!'),
        channel: "cli".into(),
        at_ms,
    }
}

/// A quorum of two: the second approving vote closes the approval.
fn quorum_of_two(row: &ApprovalRow, earlier: &[VoteRow]) -> Tally<usize> {
    if row.state != "pending" {
        return Tally::Refuse(usize::MAX);
    }
    match earlier.len() + 1 {
        n if n >= 2 => Tally::Close {
            state: "approved".into(),
            status: b"{\"state\":\"approved\"}".to_vec(),
            then: n,
        },
        n => Tally::Record(n),
    }
}

async fn a_vote_is_refused_recorded_or_decides(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    store.insert_approval(&approval("a1", "r1", 1_000)).await.unwrap();
    assert_eq!(
        store
            .count_vote(&vote("nope", "alice", 5), quorum_of_two)
            .await
            .unwrap(),
        None
    );

    let refused = store
        .count_vote(&vote("a1", "mallory", 5), |_, _| Tally::Refuse(7))
        .await;
    assert_eq!(refused.unwrap(), Some(Tally::Refuse(7)));
    assert!(
        store.votes("a1").await.unwrap().is_empty(),
        "a refused vote is not written"
    );

    let first = store.count_vote(&vote("a1", "alice!", 5), quorum_of_two).await.unwrap();
    assert_eq!(first, Some(Tally::Record(1)));
    let stored = store.votes("a1").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].grant, "the grant flag is kept");

    // The same person again: the primary key refuses it, and nothing is decided.
    let again = store.count_vote(&vote("a1", "alice!", 6), quorum_of_two).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists { .. })), "{again:?}");
    assert_eq!(store.get_approval("a1").await.unwrap().unwrap().state, "pending");

    let second = store.count_vote(&vote("a1", "bob", 7), quorum_of_two).await.unwrap();
    assert!(matches!(second, Some(Tally::Close { then: 2, .. })), "{second:?}");
    let row = store.get_approval("a1").await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.decided_ms), ("approved", Some(7)));
    let late = store.count_vote(&vote("a1", "carol", 8), quorum_of_two).await.unwrap();
    assert_eq!(late, Some(Tally::Refuse(usize::MAX)), "the decider sees it closed");
    assert_eq!(store.votes("a1").await.unwrap().len(), 2);
    store.insert_approval(&approval("a2", "r1", 1_000)).await.unwrap();
    let asked = ["a1".to_string(), "a2".into(), "unknown".into()];
    let decided: Vec<String> = store
        .decided_among(&asked)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(decided, ["a1"]);
    assert!(store.decided_among(&[]).await.unwrap().is_empty());
}

async fn racing_voters_on_separate_pools_decide_once(backend: Backend) {
    let (db, store) = new_db(backend).await;
    const APPROVALS: usize = 40;
    for i in 0..APPROVALS {
        store
            .insert_approval(&approval(&format!("a{i}"), "r1", i64::MAX))
            .await
            .unwrap();
    }
    // Three replicas, each with its own pool, all voting on every approval at once.
    let mut tasks = Vec::new();
    for person in ["alice", "bob", "carol"] {
        let replica = db.reopen().await;
        tasks.push(tokio::spawn(async move {
            let mut closed = Vec::new();
            for i in 0..APPROVALS {
                let v = vote(&format!("a{i}"), person, 10);
                if let Some(Tally::Close { .. }) = replica.count_vote(&v, quorum_of_two).await.unwrap() {
                    closed.push(i);
                }
            }
            closed
        }));
    }
    let mut closes: HashMap<usize, usize> = HashMap::new();
    for t in tasks {
        for i in t.await.unwrap() {
            *closes.entry(i).or_default() += 1;
        }
    }
    for i in 0..APPROVALS {
        assert_eq!(closes.get(&i), Some(&1), "approval a{i} closed exactly once");
        let id = format!("a{i}");
        assert_eq!(store.get_approval(&id).await.unwrap().unwrap().state, "approved");
        // The two votes that decided it are recorded; the third came too late and was refused.
        assert_eq!(store.votes(&id).await.unwrap().len(), 2, "{id}");
    }
}

async fn leases_tell_orphans_from_held_approvals(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    store.replica_alive("alive", 0, 10_000).await.unwrap();
    store.replica_alive("dead", 0, 500).await.unwrap();
    store.insert_approval(&approval("held", "alive", 9_000)).await.unwrap();
    store.insert_approval(&approval("orphan", "dead", 9_000)).await.unwrap();
    store
        .insert_approval(&approval("stranger", "never-seen", 9_000))
        .await
        .unwrap();
    store.insert_approval(&approval("overdue", "alive", 900)).await.unwrap();
    let ids = |rows: Vec<ApprovalRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.orphaned_approvals(1_000).await.unwrap()),
        ["orphan", "stranger"]
    );
    assert_eq!(ids(store.overdue_approvals(1_000).await.unwrap()), ["overdue"]);
    // Renewing extends the lease; leaving ends it at once.
    store.replica_alive("dead", 0, 20_000).await.unwrap();
    assert_eq!(ids(store.orphaned_approvals(1_000).await.unwrap()), ["stranger"]);
    store.replica_gone("alive", 0).await.unwrap();
    assert_eq!(
        ids(store.orphaned_approvals(1_000).await.unwrap()),
        ["held", "overdue", "stranger"]
    );
    // A decided approval is nobody's orphan.
    assert!(store.close_approval("held", "abandoned", 1_000, b"{}").await.unwrap());
    assert_eq!(
        ids(store.orphaned_approvals(1_000).await.unwrap()),
        ["overdue", "stranger"]
    );
}

/// Within a second: notifications arrive at commit, on another replica's connection.
async fn heard(l: &mut airlock_store::Listener) -> Heard {
    tokio::time::timeout(Duration::from_secs(5), l.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn postgres_replicas_hear_votes_decisions_and_topics_at_commit() {
    let (db, store) = new_db(Backend::Postgres).await;
    let other = db.reopen().await;
    let mut listener = other.listen().await.unwrap();
    store.insert_approval(&approval("a1", "r1", i64::MAX)).await.unwrap();
    assert_eq!(
        heard(&mut listener).await,
        Heard::Topic(approval_topic("a1")),
        "a new approval"
    );
    store.count_vote(&vote("a1", "alice", 1), quorum_of_two).await.unwrap();
    assert_eq!(heard(&mut listener).await, Heard::Topic(approval_topic("a1")), "a vote");
    // A refused vote changes nothing and says nothing.
    store
        .count_vote(&vote("a1", "bob", 2), |_, _| Tally::Refuse(()))
        .await
        .unwrap();
    store.count_vote(&vote("a1", "carol", 3), quorum_of_two).await.unwrap();
    assert_eq!(heard(&mut listener).await, Heard::Topic(approval_topic("a1")));
    store.insert_approval(&approval("a2", "r1", i64::MAX)).await.unwrap();
    assert_eq!(heard(&mut listener).await, Heard::Topic(approval_topic("a2")));
    assert!(store.close_approval("a2", "expired", 4, b"{}").await.unwrap());
    assert_eq!(heard(&mut listener).await, Heard::Topic(approval_topic("a2")));
    assert!(!store.close_approval("a2", "approved", 5, b"{}").await.unwrap());
    store.notify(airlock_store::GRANTS).await.unwrap();
    assert_eq!(heard(&mut listener).await, Heard::Topic("grants".into()));

    // The listener's connection is killed: it reconnects and says something may be missed.
    let raw = db.raw().await;
    raw.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .await;
    assert_eq!(heard(&mut listener).await, Heard::Gap);
    store.notify(airlock_store::IDENTITIES).await.unwrap();
    assert_eq!(heard(&mut listener).await, Heard::Topic("identities".into()));

    // Agents and secrets changed through any replica (or the CLI) are announced.
    let agent = airlock_store::AgentRow {
        name: "mailbot".into(),
        token_hash: vec![1; 32],
        created_ms: 1,
    };
    store.add_agent(&agent).await.unwrap();
    assert_eq!(heard(&mut listener).await, Heard::Topic("identities".into()));
    assert!(store.remove_agent("mailbot").await.unwrap());
    assert_eq!(heard(&mut listener).await, Heard::Topic("identities".into()));
}

#[tokio::test]
async fn postgres_one_replica_holds_the_exclusive_lock_and_a_survivor_takes_it() {
    let (db, store) = new_db(Backend::Postgres).await;
    let (a, b) = (db.reopen().await, db.reopen().await);
    let mut lock_a = a.exclusive(42);
    let mut lock_b = b.exclusive(42);
    assert!(lock_a.hold().await);
    assert!(!lock_b.hold().await, "held elsewhere");
    assert!(lock_a.hold().await, "still held");
    assert!(store.exclusive(43).hold().await, "another key is another lock");
    // The holder's session dies (as when its process is killed): the server frees the lock.
    let raw = db.raw().await;
    raw.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .await;
    let mut taken = false;
    for _ in 0..100 {
        if lock_b.hold().await {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(taken, "a survivor takes the lock");
    assert!(!lock_a.hold().await, "the old holder learns it lost the lock");
    assert!(!lock_a.hold().await, "and cannot take it back while it is held");
    lock_b.release().await;
    assert!(lock_a.hold().await, "released: free again");
}

#[tokio::test]
async fn sqlite_is_one_gateways_own() {
    let (_db, store) = new_db(Backend::Sqlite).await;
    assert!(!store.is_shared());
    assert!(store.exclusive(42).hold().await, "one process: always the holder");
    let mut l = store.listen().await.unwrap();
    store.notify(airlock_store::GRANTS).await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(50), l.recv()).await;
    assert!(r.is_err(), "nobody to hear on SQLite");
    let _: Store = store;
}
