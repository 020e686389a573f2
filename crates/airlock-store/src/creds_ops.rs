//! Dynamic credentials shared by gateway replicas: a lease per connection so one replica
//! refreshes its token while the others wait for the result, the commit that stores the new
//! tokens (sealed by the caller) and releases the lease in one transaction, the connection's
//! status (`needs_consent` once its refresh token is refused), and the pending authorization-code
//! flows of `airlock connect`.
//!
//! The lease is one atomic upsert, like the rate limits': it is taken when free, expired, or
//! already the caller's. The SQL runs unchanged on SQLite and PostgreSQL.

/// `$1` name, `$2` holder, `$3` now, `$4` lease until.
pub(crate) const LEASE: &str = "INSERT INTO credential_state (name, status, lease_holder, lease_until_ms, updated_ms) \
     VALUES ($1, '', $2, $4, $3) \
     ON CONFLICT (name) DO UPDATE SET lease_holder = excluded.lease_holder, lease_until_ms = excluded.lease_until_ms \
     WHERE credential_state.lease_until_ms <= $3 OR credential_state.lease_holder = $2";
/// `$1` name, `$2` holder, `$3` status, `$4` now: releases the caller's lease, setting the status.
pub(crate) const RELEASE: &str = "UPDATE credential_state SET status = $3, lease_holder = '', lease_until_ms = 0, \
     updated_ms = $4 WHERE name = $1 AND lease_holder = $2";
/// `$1` name, `$2` status, `$3` now.
pub(crate) const SET_STATUS: &str = "INSERT INTO credential_state (name, status, lease_holder, lease_until_ms, updated_ms) \
     VALUES ($1, $2, '', 0, $3) ON CONFLICT (name) DO UPDATE SET status = excluded.status, updated_ms = excluded.updated_ms";
pub(crate) const STATUSES: &str = "SELECT name, status FROM credential_state ORDER BY name";

pub(crate) const OAUTH_BEGIN: &str =
    "INSERT INTO oauth_pending (state, name, code, error, expires_ms) VALUES ($1, $2, NULL, NULL, $3)";
/// `$1` state, `$2` code, `$3` error, `$4` now: only once, only before it expires.
pub(crate) const OAUTH_CALLBACK: &str = "UPDATE oauth_pending SET code = $2, error = $3 \
     WHERE state = $1 AND code IS NULL AND error IS NULL AND expires_ms > $4";
pub(crate) const OAUTH_POLL: &str = "SELECT name, code, error FROM oauth_pending WHERE state = $1";
pub(crate) const OAUTH_FINISH: &str = "DELETE FROM oauth_pending WHERE state = $1 OR expires_ms <= $2";

/// The backend operations for dynamic credentials (after `store_ops!()`).
macro_rules! creds_ops {
    () => {
        pub(crate) async fn credential_lease(
            pool: &DbPool,
            name: &str,
            holder: &str,
            now_ms: i64,
            until_ms: i64,
        ) -> Result<bool, StoreError> {
            let r = sqlx::query($crate::creds_ops::LEASE)
                .bind(name)
                .bind(holder)
                .bind(now_ms)
                .bind(until_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() == 1)
        }

        pub(crate) async fn credential_commit(
            pool: &DbPool,
            name: &str,
            holder: &str,
            rows: &[SecretRow],
            status: &str,
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await.map_err(db)?;
            let r = sqlx::query($crate::creds_ops::RELEASE)
                .bind(name)
                .bind(holder)
                .bind(status)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            if r.rows_affected() != 1 {
                // The lease expired and another replica took it: its tokens win.
                return Ok(false);
            }
            for s in rows {
                bind_secret(sqlx::query(sql::PUT_SECRET), s)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            Ok(true)
        }

        pub(crate) async fn credential_set_status(
            pool: &DbPool,
            name: &str,
            status: &str,
            now_ms: i64,
        ) -> Result<(), StoreError> {
            sqlx::query($crate::creds_ops::SET_STATUS)
                .bind(name)
                .bind(status)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn credential_statuses(pool: &DbPool) -> Result<Vec<(String, String)>, StoreError> {
            let rows = sqlx::query($crate::creds_ops::STATUSES)
                .fetch_all(pool)
                .await
                .map_err(db)?;
            let at = At::table("credential_state");
            rows.iter()
                .map(|r| Ok((text(r, "name", at)?, text(r, "status", at)?)))
                .collect()
        }

        pub(crate) async fn oauth_begin(
            pool: &DbPool,
            state: &str,
            name: &str,
            expires_ms: i64,
        ) -> Result<(), StoreError> {
            sqlx::query($crate::creds_ops::OAUTH_BEGIN)
                .bind(state)
                .bind(name)
                .bind(expires_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn oauth_callback(
            pool: &DbPool,
            state: &str,
            code: Option<&str>,
            error: Option<&str>,
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            let r = sqlx::query($crate::creds_ops::OAUTH_CALLBACK)
                .bind(state)
                .bind(code)
                .bind(error)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() == 1)
        }

        pub(crate) async fn oauth_poll(
            pool: &DbPool,
            state: &str,
        ) -> Result<Option<(String, Option<String>, Option<String>)>, StoreError> {
            let row = sqlx::query($crate::creds_ops::OAUTH_POLL)
                .bind(state)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            let at = At::table("oauth_pending");
            row.map(|r| {
                let opt = |col: &str| $crate::ops::nullable(&r, col, || text(&r, col, at));
                Ok((text(&r, "name", at)?, opt("code")?, opt("error")?))
            })
            .transpose()
        }

        pub(crate) async fn oauth_finish(pool: &DbPool, state: &str, now_ms: i64) -> Result<(), StoreError> {
            sqlx::query($crate::creds_ops::OAUTH_FINISH)
                .bind(state)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }
    };
}

pub(crate) use creds_ops;
