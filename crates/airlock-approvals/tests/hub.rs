//! The hub against a real SQLite store and audit writer. Channels here are in-process
//! recorders: the hub's job is routing, voting and delivery; each real platform is tested
//! against its own fake in airlock-channels.

#[path = "common/recorder.rs"]
mod common_recorder;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use airlock_approvals::{HeldRule, HoldRequest, Hub, HubConfig, Verdict, VoteError};
use airlock_channels::token::Decision;
use airlock_channels::{Channel, Click, HeldRequest, Person, Status};
use airlock_core::approval::Refused;
use airlock_core::policy::ApprovalSpec;
use airlock_store::{AuditWriter, Signer, Store};
use common_recorder::Recorder;
use tokio::sync::Semaphore;

fn person(name: &str, roles: &[&str], rec_id: &str) -> Person {
    Person {
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ids: BTreeMap::from([("rec".to_string(), rec_id.to_string())]),
    }
}

fn people() -> Vec<Person> {
    vec![
        person("alice", &["owner", "senior"], "U-ALICE"),
        person("bob", &["senior"], "U-BOB"),
        person("mallory", &["intern"], "U-MAL"),
    ]
}

fn signer() -> Signer {
    Arc::new(|m: &[u8]| (m.to_vec(), b"k".to_vec()))
}

struct Env {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Store,
    rec: Arc<Recorder>,
    hub: Hub,
    audit: airlock_store::AuditHandle,
}

async fn env_with(rec: Recorder) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = Store::create_sqlite(&path).await.unwrap();
    start(dir, path, store, rec).await
}

async fn start(dir: tempfile::TempDir, path: std::path::PathBuf, store: Store, rec: Recorder) -> Env {
    let (audit, _) = AuditWriter::start(store.clone(), signer(), 1000).await.unwrap();
    let rec = Arc::new(rec);
    let cfg = HubConfig {
        people: people(),
        channels: vec![rec.clone() as Arc<dyn Channel>],
        token_key: vec![7; 32],
        lease: std::time::Duration::from_secs(10),
    };
    let hub = Hub::start(cfg, store.clone(), audit.clone()).await.unwrap();
    Env {
        _dir: dir,
        path,
        store,
        rec,
        hub,
        audit,
    }
}

fn request(roles: &[&str], quorum: u32, timeout_secs: u64, grant: Option<u64>) -> HoldRequest {
    HoldRequest {
        held: HeldRequest {
            agent: "mailbot".into(),
            method: "POST".into(),
            scheme: "https".into(),
            host: "gmail.googleapis.com".into(),
            port: 443,
            target: "/gmail/v1/users/me/messages/send".into(),
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: bytes::Bytes::from_static(br#"{"raw":"VG86IGJvYkBleGFtcGxlLmNvbQ0KU3ViamVjdDogaGkNCg0KaGVsbG8"}"#),
        },
        rules: vec![HeldRule {
            name: "mail".into(),
            reason: "sending mail needs a human".into(),
            spec: ApprovalSpec {
                approvers: roles.iter().map(|r| r.to_string()).collect(),
                quorum,
                timeout_secs,
                grant_secs: grant,
                defer_secs: None,
            },
        }],
    }
}

async fn audit_text(e: &Env) -> String {
    e.audit.flush().await.unwrap();
    let rows = e.store.audit_tail(1000).await.unwrap();
    rows.iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn approve_releases_once_and_updates_every_card() {
    let e = env_with(Recorder::default()).await;
    let t = e.hub.hold(request(&["senior"], 1, 300, None)).await.unwrap();
    let id = t.id().to_string();
    // Cards go to every eligible person (alice and bob hold "senior"), not to mallory.
    e.rec.wait_for(|r| r.sent.lock().unwrap().len() == 2).await;
    let mut to: Vec<String> = e.rec.sent.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    to.sort();
    assert_eq!(to, ["U-ALICE", "U-BOB"]);
    let waiter = tokio::spawn(t.wait());
    let c = e.hub.vote(&id, "bob", Decision::Approve, "cli").await.unwrap();
    assert_eq!(c.state, "approved");
    assert_eq!(waiter.await.unwrap(), Verdict::Approved { by: vec!["bob".into()] });
    // A second vote after the decision changes nothing.
    assert!(matches!(
        e.hub.vote(&id, "alice", Decision::Approve, "cli").await,
        Err(VoteError::Closed(_))
    ));
    e.rec
        .wait_for(|r| {
            r.updates
                .lock()
                .unwrap()
                .iter()
                .filter(|u| matches!(u.1, Status::Approved { .. }))
                .count()
                == 2
        })
        .await;
    assert_eq!(e.store.get_approval(&id).await.unwrap().unwrap().state, "approved");
    let audit = audit_text(&e).await;
    assert!(audit.contains("bob voted via cli"), "{audit}");
    assert!(audit.contains("\"decision\":\"held\""), "{audit}");
}

#[tokio::test]
async fn roles_quorum_and_one_vote_per_person() {
    let e = env_with(Recorder::default()).await;
    let t = e.hub.hold(request(&["senior"], 2, 300, None)).await.unwrap();
    let id = t.id().to_string();
    let waiter = tokio::spawn(t.wait());
    assert_eq!(
        e.hub.vote(&id, "mallory", Decision::Approve, "cli").await,
        Err(VoteError::Refused(Refused::NotEligible))
    );
    assert!(matches!(
        e.hub.vote(&id, "nobody", Decision::Approve, "cli").await,
        Err(VoteError::NotAPerson(_))
    ));
    assert_eq!(
        e.hub.vote(&id, "alice", Decision::Approve, "cli").await.unwrap().state,
        "pending"
    );
    assert_eq!(
        e.hub.vote(&id, "alice", Decision::Approve, "dashboard").await,
        Err(VoteError::Refused(Refused::AlreadyVoted))
    );
    assert!(!waiter.is_finished());
    assert_eq!(
        e.hub.vote(&id, "bob", Decision::Approve, "cli").await.unwrap().state,
        "approved"
    );
    assert_eq!(
        waiter.await.unwrap(),
        Verdict::Approved {
            by: vec!["alice".into(), "bob".into()]
        }
    );
    let votes = e.store.votes(&id).await.unwrap();
    assert_eq!(votes.len(), 2);
    assert!(audit_text(&e).await.contains("you do not hold a role"));
}

#[tokio::test]
async fn any_eligible_deny_decides_now() {
    let e = env_with(Recorder::default()).await;
    let t = e.hub.hold(request(&["senior"], 2, 300, None)).await.unwrap();
    let id = t.id().to_string();
    e.hub.vote(&id, "alice", Decision::Approve, "cli").await.unwrap();
    e.hub.vote(&id, "bob", Decision::Deny, "cli").await.unwrap();
    assert_eq!(t.wait().await, Verdict::Denied { by: "bob".into() });
}

#[tokio::test]
async fn timeout_denies() {
    let e = env_with(Recorder::default()).await;
    let t = e.hub.hold(request(&["senior"], 1, 1, None)).await.unwrap();
    let id = t.id().to_string();
    assert_eq!(t.wait().await, Verdict::Expired);
    assert_eq!(e.store.get_approval(&id).await.unwrap().unwrap().state, "expired");
    assert!(matches!(
        e.hub.vote(&id, "bob", Decision::Approve, "cli").await,
        Err(VoteError::Closed(_))
    ));
}

#[tokio::test]
async fn an_agent_that_leaves_withdraws_its_request() {
    let e = env_with(Recorder::default()).await;
    let t = e.hub.hold(request(&["senior"], 1, 300, None)).await.unwrap();
    let id = t.id().to_string();
    let mut events = e.hub.subscribe();
    drop(t);
    loop {
        let ev = events.recv().await.unwrap();
        if ev.id == id && ev.state == "withdrawn" {
            break;
        }
    }
    assert_eq!(e.store.get_approval(&id).await.unwrap().unwrap().state, "withdrawn");
    assert!(e.hub.vote(&id, "bob", Decision::Approve, "cli").await.is_err());
}

#[tokio::test]
async fn a_restart_abandons_and_never_forwards() {
    let e = env_with(Recorder::default()).await;
    let t = e.hub.hold(request(&["senior"], 1, 300, None)).await.unwrap();
    let id = t.id().to_string();
    e.rec.wait_for(|r| r.sent.lock().unwrap().len() == 2).await;
    // Where each card landed is recorded just after it is sent (a card whose message id is not
    // stored yet cannot be updated by the next process).
    for _ in 0..500 {
        if e.store.messages(&id).await.unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // rows appear without an event
    }
    // The process "dies": its tickets are gone without running their withdrawals.
    std::mem::forget(t);
    e.hub.shutdown().await;
    let Env {
        _dir, path, store, rec, ..
    } = e;
    let sent = rec.sent.lock().unwrap().clone();
    let again = Recorder::default();
    let e2 = start(_dir, path, store, again).await;
    assert_eq!(e2.store.get_approval(&id).await.unwrap().unwrap().state, "abandoned");
    // Both cards are updated to say so, through the new process's channel.
    e2.rec
        .wait_for(|r| {
            r.updates
                .lock()
                .unwrap()
                .iter()
                .filter(|u| matches!(u.1, Status::Abandoned { .. }))
                .count()
                == sent.len()
        })
        .await;
    assert!(
        matches!(e2.hub.vote(&id, "bob", Decision::Approve, "cli").await, Err(VoteError::Closed(s)) if s == "abandoned")
    );
}

fn click(user: &str, token: &str) -> Click {
    Click {
        done: Default::default(),
        channel: "rec",
        user: user.into(),
        token: token.into(),
        ack: serde_json::json!({}),
    }
}

#[tokio::test]
async fn clicks_are_checked_token_identity_role() {
    let e = env_with(Recorder::default()).await;
    let t1 = e.hub.hold(request(&["senior"], 2, 300, None)).await.unwrap();
    let t2 = e.hub.hold(request(&["senior"], 1, 300, None)).await.unwrap();
    e.rec.wait_for(|r| r.sent.lock().unwrap().len() == 4).await;
    let buttons = |id: &str| {
        e.rec
            .sent
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.1.id == id)
            .map(|s| s.2.clone())
            .unwrap()
    };
    let b1 = buttons(t1.id());
    let b2 = buttons(t2.id());
    // Garbage, an unknown clicker, a non-eligible clicker: nothing counts.
    assert!(!e.hub.click(&click("U-ALICE", "garbage")).await.ok);
    let r = e.hub.click(&click("U-STRANGER", &b1.approve)).await;
    assert!(!r.ok && r.text.contains("not configured"), "{r:?}");
    assert!(!e.hub.click(&click("U-MAL", &b1.approve)).await.ok);
    // A token lifted from another approval's card, relabelled with this id, fails its MAC.
    let forged = b2.approve.replacen(t2.id(), t1.id(), 1);
    let r = e.hub.click(&click("U-ALICE", &forged)).await;
    assert!(!r.ok && r.text.contains("signature"), "{r:?}");
    // A real click counts once; the replay does not.
    assert!(e.hub.click(&click("U-ALICE", &b1.approve)).await.ok);
    let r = e.hub.click(&click("U-ALICE", &b1.approve)).await;
    assert!(!r.ok && r.text.contains("already voted"), "{r:?}");
    assert!(e.hub.click(&click("U-BOB", &b1.approve)).await.ok);
    assert!(matches!(t1.wait().await, Verdict::Approved { .. }));
    // Deny through a click.
    assert!(e.hub.click(&click("U-BOB", &b2.deny)).await.ok);
    assert_eq!(t2.wait().await, Verdict::Denied { by: "bob".into() });
}

#[tokio::test]
async fn grants_are_scoped_listed_and_revocable() {
    let e = env_with(Recorder::default()).await;
    let rules = vec!["mail".to_string()];
    assert_eq!(
        e.hub
            .grant_for("mailbot", &rules, "gmail.googleapis.com", airlock_now()),
        None
    );
    // No grant offered → a grant vote is refused.
    let t = e.hub.hold(request(&["senior"], 1, 300, None)).await.unwrap();
    assert_eq!(
        e.hub.vote(t.id(), "bob", Decision::Grant, "cli").await,
        Err(VoteError::NoGrant)
    );
    drop(t);
    let t = e.hub.hold(request(&["senior"], 1, 300, Some(900))).await.unwrap();
    e.hub.vote(t.id(), "bob", Decision::Grant, "cli").await.unwrap();
    assert!(matches!(t.wait().await, Verdict::Approved { .. }));
    let ids = e
        .hub
        .grant_for("mailbot", &rules, "gmail.googleapis.com", airlock_now())
        .unwrap();
    assert_eq!(ids.len(), 1);
    // Scoped: another agent, host or rule is not covered.
    assert_eq!(
        e.hub.grant_for("other", &rules, "gmail.googleapis.com", airlock_now()),
        None
    );
    assert_eq!(e.hub.grant_for("mailbot", &rules, "evil.example", airlock_now()), None);
    assert_eq!(
        e.hub
            .grant_for("mailbot", &["deploy".into()], "gmail.googleapis.com", airlock_now()),
        None
    );
    // Time-limited.
    assert_eq!(
        e.hub
            .grant_for("mailbot", &rules, "gmail.googleapis.com", airlock_now() + 901_000),
        None
    );
    assert_eq!(e.hub.grants().len(), 1);
    assert!(e.hub.revoke_grant(&ids[0], "alice").await.unwrap());
    assert_eq!(
        e.hub
            .grant_for("mailbot", &rules, "gmail.googleapis.com", airlock_now()),
        None
    );
    assert!(audit_text(&e).await.contains("alice revoked the grant"));
}

#[tokio::test]
async fn undeliverable_cards_fail_closed() {
    let e = env_with(Recorder {
        fail: true,
        ..Recorder::default()
    })
    .await;
    let t = e.hub.hold(request(&["senior"], 1, 300, None)).await.unwrap();
    assert_eq!(
        t.wait().await,
        Verdict::Failed {
            reason: "no approval card could be delivered".into()
        }
    );
}

#[tokio::test]
async fn a_card_that_lands_after_the_decision_is_updated() {
    let gate = Arc::new(Semaphore::new(0));
    let e = env_with(Recorder {
        gate: Some(gate.clone()),
        ..Recorder::default()
    })
    .await;
    let t = e.hub.hold(request(&["owner"], 1, 300, None)).await.unwrap();
    e.hub
        .vote(t.id(), "alice", Decision::Approve, "dashboard")
        .await
        .unwrap();
    assert!(matches!(t.wait().await, Verdict::Approved { .. }));
    gate.add_permits(1);
    e.rec
        .wait_for(|r| {
            r.updates
                .lock()
                .unwrap()
                .iter()
                .any(|u| matches!(u.1, Status::Approved { .. }))
        })
        .await;
}

#[tokio::test]
async fn a_card_that_lands_after_a_vote_shows_it() {
    let gate = Arc::new(Semaphore::new(0));
    let e = env_with(Recorder {
        gate: Some(gate.clone()),
        ..Recorder::default()
    })
    .await;
    let t = e.hub.hold(request(&["senior"], 2, 300, None)).await.unwrap();
    e.hub
        .vote(t.id(), "alice", Decision::Approve, "dashboard")
        .await
        .unwrap();
    gate.add_permits(2);
    // Both cards were on their way during the vote; once delivered, each says "1 of 2".
    let partial = Status::Pending {
        approved_by: vec!["alice".into()],
    };
    e.rec
        .wait_for(|r| {
            let updates = r.updates.lock().unwrap();
            ["U-ALICE/", "U-BOB/"]
                .iter()
                .all(|to| updates.iter().any(|(m, s)| m.starts_with(to) && *s == partial))
        })
        .await;
}

fn airlock_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn concurrent_votes_all_count() {
    // Two approvers at the same instant on a quorum of 2: both votes count, the request is
    // released once (a vote being recorded must not make the approval look closed).
    for _ in 0..20 {
        let e = env_with(Recorder::default()).await;
        let t = e.hub.hold(request(&["senior"], 2, 300, None)).await.unwrap();
        let id = t.id().to_string();
        let (a, b) = tokio::join!(
            e.hub.vote(&id, "alice", Decision::Approve, "rec"),
            e.hub.vote(&id, "bob", Decision::Approve, "dashboard")
        );
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert!(matches!(t.wait().await, Verdict::Approved { by } if by.len() == 2));
        assert_eq!(e.store.votes(&id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn ids_are_plain_hex_and_tokens_fit_telegram() {
    // An id starting with '-' would read as an option to `airlock approvals approve ID`.
    let e = env_with(Recorder::default()).await;
    for _ in 0..50 {
        let t = e.hub.hold(request(&["senior"], 1, 300, Some(900))).await.unwrap();
        assert_eq!(t.id().len(), 18, "{}", t.id());
        assert!(
            t.id().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{}",
            t.id()
        );
    }
    e.rec.wait_for(|r| r.sent.lock().unwrap().len() == 100).await;
    for (_, _, b) in e.rec.sent.lock().unwrap().iter() {
        for tok in [Some(&b.approve), Some(&b.deny), b.grant.as_ref()]
            .into_iter()
            .flatten()
        {
            assert!(tok.len() <= airlock_channels::token::MAX_LEN, "{tok}");
        }
    }
}
