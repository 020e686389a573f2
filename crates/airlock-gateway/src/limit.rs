//! Where rate limits are counted. A gateway that owns its store (SQLite) counts in memory, with
//! no store round trip; replicas sharing a store (PostgreSQL) count in it, one atomic statement
//! per take ([`Store::rate_take`]), so "N per minute" holds across all of them. Either way the
//! arithmetic is the core's GCRA ([`Rate::gcra_ms`]); only requests matching a rule with a rate
//! come here.

use std::sync::Mutex;
use std::time::Duration;

use airlock_core::policy::{Rate, RateLimiter};
use airlock_store::Store;

/// Longest a take waits for the shared store; then the request is refused (fail closed).
const SHARED_TIMEOUT: Duration = Duration::from_secs(2);

pub enum Limiter {
    Local(Mutex<RateLimiter>),
    Shared(Store),
}

/// A rate limit that could not be checked: the request is refused with 503 (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rate limit of rule {rule:?} cannot be checked: the shared store is unavailable")]
pub struct Unchecked {
    pub rule: String,
}

impl Limiter {
    /// Counts one request of `agent` against rule `index` (named `name`): `Ok(false)` when it
    /// exceeds `rate`.
    /// Forgets every rate counted in memory (after a policy reload); shared ones stay.
    pub fn reset_local(&self) {
        if let Limiter::Local(l) = self {
            let mut l = l.lock().unwrap_or_else(|p| p.into_inner());
            *l = RateLimiter::default();
        }
    }

    pub async fn take(
        &self,
        index: usize,
        name: &str,
        agent: &str,
        rate: Rate,
        now_ms: u64,
    ) -> Result<bool, Unchecked> {
        match self {
            // A poisoned lock refuses (fail closed), as a failed check would.
            Limiter::Local(l) => Ok(l
                .lock()
                .map(|mut l| l.check(index, agent, rate, now_ms))
                .unwrap_or(false)),
            Limiter::Shared(store) => {
                let (interval, burst) = rate.gcra_ms();
                let key = shared_key(agent, rate, name);
                let taken = store.rate_take(&key, ms(interval), ms(burst), ms(now_ms));
                match tokio::time::timeout(SHARED_TIMEOUT, taken).await {
                    Ok(Ok(allowed)) => Ok(allowed),
                    Ok(Err(e)) => {
                        tracing::warn!(rule = name, error = %e, "shared rate limit unavailable; refusing");
                        Err(Unchecked { rule: name.to_owned() })
                    }
                    Err(_) => {
                        tracing::warn!(
                            rule = name,
                            "shared rate limit: no answer from the store in time; refusing"
                        );
                        Err(Unchecked { rule: name.to_owned() })
                    }
                }
            }
        }
    }

    /// Forgets limits that are full again (memory, or rows in the shared store).
    pub async fn prune(&self, now_ms: u64) {
        match self {
            Limiter::Local(l) => {
                if let Ok(mut l) = l.lock() {
                    l.prune(now_ms);
                }
            }
            Limiter::Shared(store) => {
                if let Err(e) = store.rate_prune(ms(now_ms)).await {
                    tracing::warn!(error = %e, "could not prune the shared rate limits");
                }
            }
        }
    }
}

/// The shared row's key: agent names have no spaces and the rate has none, so the rule name
/// (any text) can come last. The rate is in the key so a limit whose rate was changed starts
/// afresh rather than inheriting a TAT reckoned at the old rate (up to a day ahead).
fn shared_key(agent: &str, rate: Rate, rule: &str) -> String {
    format!("{agent} {}/{}s {rule}", rate.count, rate.per_secs)
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
