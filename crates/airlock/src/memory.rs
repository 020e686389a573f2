//! The store as the channels' [`Memory`]: keys in the `meta` table under `channel/`, shared by
//! every replica on PostgreSQL and kept across restarts on SQLite.

use airlock_channels::BoxFuture;
use airlock_channels::memory::Memory;
use airlock_store::Store;

pub struct StoreMemory(pub Store);

fn key(k: &str) -> String {
    format!("channel/{k}")
}

impl Memory for StoreMemory {
    fn get<'a>(&'a self, k: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(async move { self.0.get_meta(&key(k)).await.map_err(|e| e.to_string()) })
    }

    fn put<'a>(&'a self, k: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.0.set_meta(&key(k), value).await.map_err(|e| e.to_string()) })
    }

    fn remove<'a>(&'a self, k: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.0.delete_meta(&key(k)).await.map_err(|e| e.to_string()) })
    }
}
