//! Defer mode in the store: a deferred request passes once, only once approved, however many
//! identical retries race for it.

mod common;

use airlock_store::{ApprovalRow, Store};
use common::{Backend, new_db, on_both_backends};

on_both_backends! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] an_approved_deferral_passes_exactly_once,
}

const T0: i64 = 1_700_000_000_000;

fn row(id: &str) -> ApprovalRow {
    ApprovalRow {
        id: id.into(),
        agent: "mailbot".into(),
        host: "localhost".into(),
        digest: "cd".repeat(32),
        card: b"{}".to_vec(),
        state: "pending".into(),
        created_ms: T0,
        expires_ms: T0 + 300_000,
        decided_ms: None,
        status: None,
        replica: Some("r1".into()),
    }
}

async fn an_approved_deferral_passes_exactly_once(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let digest = "cd".repeat(32);
    store.insert_approval(&row("a1")).await.unwrap();
    store.defer_add("a1", "mailbot", &digest, T0).await.unwrap();
    let d = store.defer_latest("mailbot", &digest).await.unwrap().unwrap();
    assert_eq!(
        (d.approval_id.as_str(), d.state.as_str(), d.decided_ms),
        ("a1", "pending", None)
    );
    assert!(store.defer_latest("other", &digest).await.unwrap().is_none());
    assert!(!store.defer_pass("a1", T0 + 1).await.unwrap(), "pending never passes");

    assert!(store.close_approval("a1", "approved", T0 + 10, b"{}").await.unwrap());
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let s: Store = store.clone();
            tokio::spawn(async move { s.defer_pass("a1", T0 + 20).await.unwrap() })
        })
        .collect();
    let mut passed = 0;
    for t in takers {
        passed += usize::from(t.await.unwrap());
    }
    assert_eq!(passed, 1, "exactly one identical retry passes");
    assert!(store.defer_latest("mailbot", &digest).await.unwrap().is_none());
}
