//! Replicas in one process: each hub has its own pool on one PostgreSQL database (a real
//! server), as separate gateway processes do. A decision taken on any replica releases the
//! request on the replica holding it, once; grants and the feed reader are shared.
#[path = "common/recorder.rs"]
mod common_recorder;
#[path = "../../airlock-store/tests/common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use airlock_approvals::{HeldRule, HoldRequest, Hub, HubConfig, Verdict, VoteError};
use airlock_channels::token::Decision;
use airlock_channels::{Channel, HeldRequest, Person, Status};
use airlock_core::approval::Refused;
use airlock_core::policy::ApprovalSpec;
use airlock_store::{AuditWriter, Signer, Store};
use common_recorder::{Feed, Recorder};

fn people() -> Vec<Person> {
    let p = |name: &str, roles: &[&str]| Person {
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ids: BTreeMap::from([("rec".to_string(), format!("U-{name}"))]),
    };
    vec![p("alice", &["senior"]), p("bob", &["senior"]), p("carol", &["senior"])]
}

fn signer() -> Signer {
    Arc::new(|m: &[u8]| (m.to_vec(), b"k".to_vec()))
}

struct Replica {
    hub: Hub,
    rec: Arc<Recorder>,
}

/// A replica: its own pool on `url`, its own audit writer and channel; feed readers counted in `feed`.
async fn replica(url: &str, lease: Duration, feed: &Arc<Feed>) -> Replica {
    let store = Store::open(url).await.unwrap();
    let (audit, _) = AuditWriter::start(store.clone(), signer(), 1000).await.unwrap();
    let rec = Arc::new(Recorder {
        feed: feed.clone(),
        ..Recorder::default()
    });
    let cfg = HubConfig {
        people: people(),
        channels: vec![rec.clone() as Arc<dyn Channel>],
        token_key: vec![7; 32],
        lease,
    };
    let hub = Hub::start(cfg, store, audit).await.unwrap();
    Replica { hub, rec }
}

async fn cluster(n: usize, lease: Duration) -> (pg::Database, Vec<Replica>, Arc<Feed>) {
    let db = pg::Database::create().await;
    Store::create(&db.url).await.unwrap();
    let feed = Arc::new(Feed::default());
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(replica(&db.url, lease, &feed).await);
    }
    (db, out, feed)
}

fn request(quorum: u32, grant: Option<u64>) -> HoldRequest {
    HoldRequest {
        held: HeldRequest {
            agent: "mailbot".into(),
            method: "POST".into(),
            scheme: "https".into(),
            host: "mail.example.com".into(),
            port: 443,
            target: "/send".into(),
            headers: vec![],
            body: bytes::Bytes::from_static(b"{\"to\":\"bob@example.com\"}"),
        },
        rules: vec![HeldRule {
            name: "mail".into(),
            reason: "sending mail needs a human".into(),
            spec: ApprovalSpec {
                approvers: vec!["senior".into()],
                quorum,
                timeout_secs: 300,
                grant_secs: grant,
                defer_secs: None,
            },
        }],
    }
}

async fn verdict(t: airlock_approvals::Ticket) -> Verdict {
    tokio::time::timeout(Duration::from_secs(10), t.wait())
        .await
        .expect("the held request was never released")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_on_another_replica_releases_the_holder() {
    let (_db, r, _) = cluster(2, Duration::from_secs(10)).await;
    let t = r[0].hub.hold(request(2, None)).await.unwrap();
    let id = t.id().to_string();
    // The other replica's dashboard sees it pending, not as someone else's dead request.
    let seen = r[1].hub.get(&id).await.unwrap().unwrap();
    assert_eq!(seen.status, Status::Pending { approved_by: vec![] });
    let c = r[1]
        .hub
        .vote(&id, "alice", Decision::Approve, "dashboard")
        .await
        .unwrap();
    assert_eq!(c.state, "pending");
    // The holder's cards show the vote counted elsewhere.
    r[0].rec
        .wait_until("the card to show alice's vote", |rec| {
            rec.updates
                .lock()
                .unwrap()
                .iter()
                .any(|(_, s)| matches!(s, Status::Pending { approved_by } if approved_by == &["alice".to_string()]))
        })
        .await;
    let c = r[1].hub.vote(&id, "bob", Decision::Approve, "cli").await.unwrap();
    assert_eq!(c.state, "approved");
    let v = verdict(t).await;
    assert_eq!(
        v,
        Verdict::Approved {
            by: vec!["alice".into(), "bob".into()]
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_votes_on_two_replicas_forward_once() {
    let (_db, r, _) = cluster(2, Duration::from_secs(10)).await;
    for round in 0..25 {
        // Two approvers at the same instant on two replicas: quorum 2 met once.
        let t = r[round % 2].hub.hold(request(2, None)).await.unwrap();
        let id = t.id().to_string();
        let (a, b) = tokio::join!(
            r[0].hub.vote(&id, "alice", Decision::Approve, "slack"),
            r[1].hub.vote(&id, "bob", Decision::Approve, "telegram"),
        );
        let mut states = vec![a.unwrap().state, b.unwrap().state];
        states.sort();
        assert_eq!(states, ["approved", "pending"], "round {round}");
        assert!(matches!(verdict(t).await, Verdict::Approved { by } if by.len() == 2));

        // One approver clicking twice, on both replicas at once: one vote, one decision.
        let t = r[round % 2].hub.hold(request(1, None)).await.unwrap();
        let id = t.id().to_string();
        let (a, b) = tokio::join!(
            r[0].hub.vote(&id, "carol", Decision::Approve, "slack"),
            r[1].hub.vote(&id, "carol", Decision::Approve, "slack"),
        );
        let (ok, refused): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(|v| v.is_ok());
        assert_eq!(ok.len(), 1, "round {round}: {refused:?}");
        assert!(
            matches!(
                &refused[0],
                Err(VoteError::Refused(Refused::AlreadyVoted)) | Err(VoteError::Closed(_))
            ),
            "round {round}: {refused:?}"
        );
        assert_eq!(
            verdict(t).await,
            Verdict::Approved {
                by: vec!["carol".into()]
            }
        );
        let view = r[0].hub.get(&id).await.unwrap().unwrap();
        assert_eq!(view.votes.len(), 1, "round {round}: one vote recorded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_written_without_a_notification_is_found_by_polling() {
    let (db, r, _) = cluster(1, Duration::from_secs(10)).await;
    let t = r[0].hub.hold(request(1, None)).await.unwrap();
    let id = t.id().to_string();
    // Decided behind the hub's back: no notification is sent for this update.
    let status = serde_json::to_string(&Status::Denied {
        by: "bob".into(),
        at_ms: 1,
    })
    .unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::query("UPDATE approvals SET state = 'denied', decided_ms = 1, status = $2 WHERE id = $1")
        .bind(&id)
        .bind(status.as_bytes())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(verdict(t).await, Verdict::Denied { by: "bob".into() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_given_on_one_replica_apply_and_revoke_on_every_replica() {
    let (_db, r, _) = cluster(2, Duration::from_secs(10)).await;
    let t = r[0].hub.hold(request(1, Some(900))).await.unwrap();
    let id = t.id().to_string();
    r[1].hub.vote(&id, "alice", Decision::Grant, "dashboard").await.unwrap();
    assert!(matches!(verdict(t).await, Verdict::Approved { .. }));
    let rules = ["mail".to_string()];
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let ids = r[0].rec.clone();
    ids.wait_until("the grant on the holder", |_| {
        r[0].hub
            .grant_for("mailbot", &rules, "mail.example.com", now())
            .is_some()
    })
    .await;
    assert!(
        r[1].hub
            .grant_for("mailbot", &rules, "mail.example.com", now())
            .is_some()
    );
    let grant = r[0].hub.grants()[0].id.clone();
    assert!(r[0].hub.revoke_grant(&grant, "alice").await.unwrap());
    r[1].rec
        .wait_until("the revocation on the other replica", |_| {
            r[1].hub
                .grant_for("mailbot", &rules, "mail.example.com", now())
                .is_none()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replicas_approvals_are_abandoned_by_a_survivor() {
    let (_db, r, _) = cluster(2, Duration::from_secs(3)).await;
    let mut ids = Vec::new();
    let mut tickets = Vec::new();
    for _ in 0..5 {
        let t = r[0].hub.hold(request(1, None)).await.unwrap();
        ids.push(t.id().to_string());
        tickets.push(t);
    }
    r[0].rec
        .wait_until("every card sent", |rec| rec.sent.lock().unwrap().len() == 15)
        .await;
    // The holder goes away; its requests are never forwarded.
    r[0].hub.shutdown().await;
    std::mem::forget(tickets);
    r[1].rec
        .wait_until("the survivor to update every card", |rec| {
            rec.updates
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, s)| matches!(s, Status::Abandoned { .. }))
                .count()
                == 15
        })
        .await;
    for id in &ids {
        let v = r[1].hub.vote(id, "alice", Decision::Approve, "cli").await;
        assert!(matches!(&v, Err(VoteError::Closed(s)) if s == "abandoned"), "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_reads_the_feeds_and_a_survivor_takes_over() {
    let (_db, r, feed) = cluster(3, Duration::from_secs(10)).await;
    let reading = |r: &[Replica]| {
        r.iter()
            .map(|x| x.rec.reading_here.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    r[0].rec
        .wait_until("a reader", |_| reading(&r).iter().sum::<usize>() == 1)
        .await;
    let leader = reading(&r).iter().position(|n| *n == 1).unwrap();
    r[leader].hub.shutdown().await;
    let rest: Vec<&Replica> = r
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, x)| x)
        .collect();
    rest[0]
        .rec
        .wait_until("a survivor to read", |_| {
            rest.iter()
                .map(|x| x.rec.reading_here.load(Ordering::SeqCst))
                .sum::<usize>()
                == 1
        })
        .await;
    assert_eq!(reading(&r)[leader], 0, "the old leader stopped reading");
    assert_eq!(feed.most.load(Ordering::SeqCst), 1, "never two readers at once");
}
