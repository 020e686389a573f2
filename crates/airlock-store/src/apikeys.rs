//! [`Store`]'s API-key operations (see `apikeys_ops.rs` for the SQL).

use crate::{Backend, Store, StoreError, postgres, sqlite};

/// A scoped API key: its name, the SHA-256 of the key, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub name: String,
    pub key_hash: Vec<u8>,
    /// "provision", "approvals".
    pub scopes: Vec<String>,
    pub created_ms: i64,
}

impl Store {
    /// Fails with [`StoreError::AlreadyExists`] if a key of that name exists.
    pub async fn add_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        dispatch!(self, add_api_key(key))
    }

    /// All keys, ordered by name.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        dispatch!(self, list_api_keys())
    }

    /// The key whose hash is `hash`: read on every request, so a removed key is refused at once.
    pub async fn api_key_by_hash(&self, hash: &[u8]) -> Result<Option<ApiKeyRow>, StoreError> {
        dispatch!(self, api_key_by_hash(hash))
    }

    /// `true` if a key was removed.
    pub async fn remove_api_key(&self, name: &str) -> Result<bool, StoreError> {
        dispatch!(self, remove_api_key(name))
    }
}
