//! Scoped API keys in the store (migration 0008 on both backends): added once per name, found
//! by hash only, and gone the moment they are removed.

mod common;

use airlock_store::{ApiKeyRow, StoreError};
use common::{Backend, new_db, on_both_backends};

on_both_backends! {
    #[tokio::test] api_keys_are_found_by_hash_and_revoked_at_once,
}

async fn api_keys_are_found_by_hash_and_revoked_at_once(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let key = ApiKeyRow {
        name: "nanoclaw".into(),
        key_hash: vec![7; 32],
        scopes: vec!["provision".into(), "approvals".into()],
        created_ms: 1_700_000_000_000,
    };
    store.add_api_key(&key).await.unwrap();
    let again = store.add_api_key(&key).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists { .. })), "{again:?}");
    assert_eq!(store.api_key_by_hash(&[7; 32]).await.unwrap(), Some(key.clone()));
    assert_eq!(store.api_key_by_hash(&[8; 32]).await.unwrap(), None);
    assert_eq!(store.list_api_keys().await.unwrap(), vec![key]);
    assert!(store.remove_api_key("nanoclaw").await.unwrap());
    assert!(!store.remove_api_key("nanoclaw").await.unwrap());
    assert_eq!(store.api_key_by_hash(&[7; 32]).await.unwrap(), None);
}
