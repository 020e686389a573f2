//! [`Store`]'s shared rate limits (see `rate_ops.rs` for the algorithm and the SQL).

use crate::{Backend, Store, StoreError, postgres, sqlite};

impl Store {
    /// Takes one request from the rate limit `key` at `now_ms` (GCRA: `interval_ms` per request,
    /// bursts up to `burst_ms`; see `airlock_core::policy::Rate::gcra_ms`). `true` when it is
    /// within the limit (and counted), `false` when it exceeds it (and nothing changes).
    /// One atomic statement: takers on every replica sharing the store count against one limit.
    pub async fn rate_take(&self, key: &str, interval_ms: i64, burst_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        if interval_ms > burst_ms {
            return Ok(false); // not even one request fits
        }
        dispatch!(self, rate_take(key, interval_ms, burst_ms, now_ms))
    }

    /// Deletes the limits whose TAT is not after `now_ms` (they are full again, as if never
    /// used); returns how many. Call now and then to keep the table small.
    pub async fn rate_prune(&self, now_ms: i64) -> Result<u64, StoreError> {
        dispatch!(self, rate_prune(now_ms))
    }
}
