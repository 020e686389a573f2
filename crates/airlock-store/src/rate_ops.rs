//! Rate limits shared by gateway replicas: the generic cell rate algorithm (GCRA) of
//! `airlock_core::policy::RateLimiter`, run by the database in one statement, so replicas sharing
//! a store share each limit.
//!
//! One row per key holds its theoretical arrival time (TAT). A take at `now` moves it to
//! `max(tat, now) + interval` if that lands within `now + burst`, else leaves it: an upsert whose
//! `DO UPDATE` carries that condition. The statement is atomic (PostgreSQL locks the row and
//! re-checks the condition on its latest version; SQLite has one writer), so concurrent takers
//! on any number of connections or replicas never let more through than the burst. One round
//! trip; the SQL runs unchanged on SQLite and PostgreSQL (no `GREATEST`/`max()`, no `RETURNING`):
//! the row count says whether the take was allowed.
//!
//! This file holds the SQL and the backend operations (expanded inside each backend module);
//! [`Store`](crate::Store)'s methods are in `rate.rs`, so the files point one way.

/// `$1` key, `$2` interval, `$3` burst, `$4` now (ms). A new key is inserted at `now + interval`;
/// an existing one is updated only while the new TAT stays within the burst.
pub(crate) const TAKE: &str = "INSERT INTO rate_limits (key, tat_ms) VALUES ($1, $4 + $2) \
     ON CONFLICT (key) DO UPDATE SET tat_ms = (CASE WHEN rate_limits.tat_ms > $4 THEN rate_limits.tat_ms ELSE $4 END) + $2 \
     WHERE (CASE WHEN rate_limits.tat_ms > $4 THEN rate_limits.tat_ms ELSE $4 END) + $2 <= $4 + $3";

/// A TAT in the past is the same as no row (a take treats both as `now`).
pub(crate) const PRUNE: &str = "DELETE FROM rate_limits WHERE tat_ms <= $1";

/// `rate_take` and `rate_prune` for a backend module (after `store_ops!()`, whose pool type and
/// error mapper they use).
macro_rules! rate_ops {
    () => {
        pub(crate) async fn rate_take(
            pool: &DbPool,
            key: &str,
            interval_ms: i64,
            burst_ms: i64,
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            let r = sqlx::query($crate::rate_ops::TAKE)
                .bind(key)
                .bind(interval_ms)
                .bind(burst_ms)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() == 1)
        }

        pub(crate) async fn rate_prune(pool: &DbPool, now_ms: i64) -> Result<u64, StoreError> {
            let r = sqlx::query($crate::rate_ops::PRUNE)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected())
        }
    };
}

pub(crate) use rate_ops;
