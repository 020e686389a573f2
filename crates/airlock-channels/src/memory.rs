//! Durable state a channel keeps between calls, across restarts and across replicas: which
//! approval a sent WhatsApp card belongs to, the Matrix `/sync` position, the vote codes of a
//! Matrix or Signal card. The gateway backs it with its store (SQLite or PostgreSQL, shared by
//! every replica); tests use [`Volatile`].
//!
//! Keys are namespaced by the channel ("whatsapp/card/…"); values are small JSON documents.
//! Nothing secret goes in: a vote code maps to tokens that count only for the person they were
//! minted for.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::BoxFuture;

/// A key/value store a channel remembers things in. Errors are short descriptions (never a
/// value).
pub trait Memory: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;
    /// Inserts or replaces.
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>>;
    /// Forgets `key` (nothing happens when it is not there).
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// A [`Memory`] in this process only: for tests, and for a channel built without a store.
#[derive(Debug, Default)]
pub struct Volatile {
    map: Mutex<HashMap<String, Vec<u8>>>,
}

impl Volatile {
    pub fn new() -> Volatile {
        Volatile::default()
    }

    /// Every key, sorted (for tests).
    pub fn keys(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }
}

impl Memory for Volatile {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        let v = self
            .map
            .lock()
            .map(|m| m.get(key).cloned())
            .map_err(|_| "poisoned".to_string());
        Box::pin(async move { v })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        let r = self
            .map
            .lock()
            .map(|mut m| {
                m.insert(key.to_string(), value.to_vec());
            })
            .map_err(|_| "poisoned".to_string());
        Box::pin(async move { r })
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let r = self
            .map
            .lock()
            .map(|mut m| {
                m.remove(key);
            })
            .map_err(|_| "poisoned".to_string());
        Box::pin(async move { r })
    }
}

/// Reads a JSON value; a missing key, or one that does not parse, is `None`.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(mem: &dyn Memory, key: &str) -> Result<Option<T>, String> {
    Ok(mem.get(key).await?.and_then(|b| serde_json::from_slice(&b).ok()))
}

pub(crate) async fn put_json<T: serde::Serialize>(mem: &dyn Memory, key: &str, value: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    mem.put(key, &bytes).await
}
