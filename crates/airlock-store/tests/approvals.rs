//! Approvals, votes, cards, grants and sessions, against each backend.

mod common;

use airlock_store::{ApprovalRow, GrantRow, MessageRow, SessionRow, StoreError, VoteRow};
use common::{Backend, new_db, on_both_backends};

on_both_backends! {
    #[tokio::test] a_decision_lands_exactly_once,
    #[tokio::test] one_vote_per_person,
    #[tokio::test] listing_and_messages,
    #[tokio::test] grants_expire_and_revoke,
    #[tokio::test] passwords_and_sessions,
}

fn approval(id: &str, created_ms: i64) -> ApprovalRow {
    ApprovalRow {
        id: id.into(),
        agent: "mailbot".into(),
        host: "gmail.googleapis.com".into(),
        digest: "ab".repeat(32),
        card: br#"{"id":"x"}"#.to_vec(),
        state: "pending".into(),
        created_ms,
        expires_ms: created_ms + 300_000,
        decided_ms: None,
        status: None,
        replica: Some("r1".into()),
    }
}

fn vote(id: &str, person: &str) -> VoteRow {
    VoteRow {
        approval_id: id.into(),
        person: person.into(),
        approve: true,
        grant: false,
        channel: "cli".into(),
        at_ms: 5,
    }
}

async fn a_decision_lands_exactly_once(backend: Backend) {
    let (_dir, store) = new_db(backend).await;
    store.insert_approval(&approval("a1", 1)).await.unwrap();
    assert!(store.close_approval("a1", "approved", 10, b"{}").await.unwrap());
    // A second decider (a deny racing the approve, an expiry) changes nothing.
    assert!(!store.close_approval("a1", "denied", 11, b"{}").await.unwrap());
    let row = store.get_approval("a1").await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.decided_ms), ("approved", Some(10)));
    assert_eq!(row.status.as_deref(), Some(&b"{}"[..]));
    assert!(!store.close_approval("missing", "denied", 1, b"{}").await.unwrap());
}

async fn one_vote_per_person(backend: Backend) {
    let (_dir, store) = new_db(backend).await;
    store.insert_approval(&approval("a1", 1)).await.unwrap();
    store.add_vote(&vote("a1", "alice")).await.unwrap();
    store.add_vote(&vote("a1", "bob")).await.unwrap();
    let again = store.add_vote(&vote("a1", "alice")).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists { .. })), "{again:?}");
    let people: Vec<String> = store.votes("a1").await.unwrap().into_iter().map(|v| v.person).collect();
    assert_eq!(people, ["alice", "bob"]);
    // A vote needs an existing approval.
    assert!(store.add_vote(&vote("nope", "alice")).await.is_err());
}

async fn listing_and_messages(backend: Backend) {
    let (_dir, store) = new_db(backend).await;
    for (i, id) in ["a1", "a2", "a3"].iter().enumerate() {
        store.insert_approval(&approval(id, i as i64)).await.unwrap();
    }
    store.close_approval("a2", "denied", 9, b"{}").await.unwrap();
    let pending: Vec<String> = store
        .list_approvals(Some("pending"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(pending, ["a3", "a1"]);
    assert_eq!(store.list_approvals(None, 2).await.unwrap().len(), 2);
    // The order a person works through them, and how many there are in all.
    let oldest: Vec<String> = store
        .pending_oldest_first(10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(oldest, ["a1", "a3"]);
    assert_eq!(store.pending_oldest_first(1).await.unwrap()[0].id, "a1");
    for (state, n) in [
        (Some("pending"), 2),
        (Some("denied"), 1),
        (Some("expired"), 0),
        (None, 3),
    ] {
        assert_eq!(store.count_approvals(state).await.unwrap(), n, "{state:?}");
    }
    let m = MessageRow {
        approval_id: "a1".into(),
        channel: "slack".into(),
        person: "alice".into(),
        message_ref: "D1/1.0".into(),
    };
    store.add_message(&m).await.unwrap();
    store
        .add_message(&MessageRow {
            message_ref: "D1/2.0".into(),
            ..m.clone()
        })
        .await
        .unwrap();
    let ms = store.messages("a1").await.unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].message_ref, "D1/2.0");
}

async fn grants_expire_and_revoke(backend: Backend) {
    let (_dir, store) = new_db(backend).await;
    let g = |id: &str, expires_ms| GrantRow {
        id: id.into(),
        agent: "mailbot".into(),
        rule: "mail".into(),
        host: "gmail.googleapis.com".into(),
        granted_by: "alice".into(),
        approval_id: "a1".into(),
        created_ms: 1,
        expires_ms,
        revoked_ms: None,
    };
    store.add_grant(&g("g1", 100)).await.unwrap();
    store.add_grant(&g("g2", 200)).await.unwrap();
    assert_eq!(store.active_grants(50).await.unwrap().len(), 2);
    assert_eq!(store.active_grants(150).await.unwrap().len(), 1);
    assert!(store.revoke_grant("g2", 60).await.unwrap());
    assert!(!store.revoke_grant("g2", 61).await.unwrap());
    assert!(store.active_grants(70).await.unwrap().iter().all(|x| x.id == "g1"));
    assert!(!store.revoke_grant("g1", 100).await.unwrap(), "already expired");
}

async fn passwords_and_sessions(backend: Backend) {
    let (_dir, store) = new_db(backend).await;
    assert_eq!(store.password("alice").await.unwrap(), None);
    store.set_password("alice", "$argon2id$v=19$x", 1).await.unwrap();
    store.set_password("alice", "$argon2id$v=19$y", 2).await.unwrap();
    assert_eq!(
        store.password("alice").await.unwrap().as_deref(),
        Some("$argon2id$v=19$y")
    );
    let s = SessionRow {
        token_hash: vec![7; 32],
        person: "alice".into(),
        csrf: "c".into(),
        expires_ms: 100,
    };
    store.put_session(&s).await.unwrap();
    assert_eq!(store.session(&[7; 32], 50).await.unwrap(), Some(s.clone()));
    assert_eq!(store.session(&[7; 32], 100).await.unwrap(), None, "expired");
    store.delete_session(&[7; 32]).await.unwrap();
    assert_eq!(store.session(&[7; 32], 50).await.unwrap(), None);
}
