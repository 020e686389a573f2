//! Dynamic credentials in the store: the refresh lease that lets one replica at a time call the
//! token endpoint, the commit that writes the new tokens only while the lease is still the
//! committer's (and releases it), the needs-consent status, and the pending `airlock connect`
//! flows whose callback answers once, before expiry.

mod common;

use airlock_store::{NEEDS_CONSENT, SecretRow, Store};
use common::{Backend, new_db, on_both_backends};

on_both_backends! {
    #[tokio::test] one_lease_holder_at_a_time_and_only_its_commit_lands,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] concurrent_leases_on_separate_pools_have_one_winner,
    #[tokio::test] an_oauth_callback_answers_its_state_once_before_expiry,
}

const T0: i64 = 1_700_000_000_000;

fn row(name: &str, version: i64) -> SecretRow {
    SecretRow {
        name: name.into(),
        version,
        key_id: "k".into(),
        nonce: vec![1; 12],
        ciphertext: vec![version as u8; 20],
        updated_ms: T0,
    }
}

async fn one_lease_holder_at_a_time_and_only_its_commit_lands(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    assert!(store.credential_lease("mail", "a", T0, T0 + 30_000).await.unwrap());
    assert!(
        !store.credential_lease("mail", "b", T0 + 1, T0 + 30_001).await.unwrap(),
        "held by a"
    );
    assert!(
        store.credential_lease("mail", "a", T0 + 2, T0 + 30_002).await.unwrap(),
        "a renews"
    );
    assert!(
        store.credential_lease("other", "b", T0, T0 + 30_000).await.unwrap(),
        "per credential"
    );
    // b's commit without the lease writes nothing.
    assert!(
        !store
            .credential_commit("mail", "b", &[row("mail#access", 1)], "", T0)
            .await
            .unwrap()
    );
    assert!(store.get_secret("mail#access").await.unwrap().is_none());
    // a's commit writes both rows at once and frees the lease.
    let rows = [row("mail#access", 1), row("mail", 2)];
    assert!(store.credential_commit("mail", "a", &rows, "", T0 + 3).await.unwrap());
    assert_eq!(store.get_secret("mail").await.unwrap().unwrap().version, 2);
    assert!(store.get_secret("mail#access").await.unwrap().is_some());
    assert!(store.credential_lease("mail", "b", T0 + 4, T0 + 30_004).await.unwrap());
    // An expired lease can be taken over; the old holder's late commit then fails.
    assert!(
        store
            .credential_lease("mail", "c", T0 + 40_000, T0 + 70_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .credential_commit("mail", "b", &[row("mail", 3)], "", T0 + 40_001)
            .await
            .unwrap()
    );
    assert_eq!(store.get_secret("mail").await.unwrap().unwrap().version, 2);
    // A refused refresh: the status says so until `airlock connect` clears it.
    assert!(
        store
            .credential_commit("mail", "c", &[], NEEDS_CONSENT, T0 + 40_002)
            .await
            .unwrap()
    );
    let st = store.credential_statuses().await.unwrap();
    assert!(st.contains(&("mail".to_string(), NEEDS_CONSENT.to_string())), "{st:?}");
    store.credential_set_status("mail", "", T0 + 50_000).await.unwrap();
    let st = store.credential_statuses().await.unwrap();
    assert!(st.contains(&("mail".to_string(), String::new())), "{st:?}");
}

async fn concurrent_leases_on_separate_pools_have_one_winner(backend: Backend) {
    let (db, store) = new_db(backend).await;
    let mut stores: Vec<Store> = vec![store];
    for _ in 0..3 {
        stores.push(db.reopen().await);
    }
    let mut tasks = Vec::new();
    for (i, s) in stores.into_iter().enumerate() {
        for j in 0..5 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.credential_lease("mail", &format!("replica-{i}-{j}"), T0, T0 + 30_000)
                    .await
                    .unwrap()
            }));
        }
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn an_oauth_callback_answers_its_state_once_before_expiry(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    store.oauth_begin("st-1", "mail", T0 + 600_000).await.unwrap();
    assert!(!store.oauth_callback("unknown", Some("c"), None, T0).await.unwrap());
    assert!(store.oauth_callback("st-1", Some("code-1"), None, T0).await.unwrap());
    assert!(
        !store.oauth_callback("st-1", Some("code-2"), None, T0).await.unwrap(),
        "once"
    );
    let p = store.oauth_poll("st-1").await.unwrap().unwrap();
    assert_eq!(
        (p.name.as_str(), p.code.as_deref(), p.error),
        ("mail", Some("code-1"), None)
    );
    store.oauth_begin("st-2", "mail", T0 + 10).await.unwrap();
    assert!(
        !store.oauth_callback("st-2", Some("late"), None, T0 + 10).await.unwrap(),
        "expired"
    );
    store.oauth_finish("st-1", T0 + 20).await.unwrap();
    assert!(store.oauth_poll("st-1").await.unwrap().is_none());
    assert!(
        store.oauth_poll("st-2").await.unwrap().is_none(),
        "expired flows are forgotten"
    );
}
