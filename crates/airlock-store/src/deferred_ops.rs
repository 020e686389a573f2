//! Defer mode shared by gateway replicas: which approvals were deferred (answered 428 at once)
//! and whether the approved request has used its one pass. The pass is one atomic `UPDATE …
//! WHERE passed_ms IS NULL`: of any number of identical retries on any replicas, one sees a row
//! count of 1 and goes upstream. The SQL runs unchanged on SQLite and PostgreSQL.
//!
//! This file holds the SQL and the backend operations (expanded inside each backend module);
//! [`Store`](crate::Store)'s methods are in `deferred.rs`.

pub(crate) const ADD: &str =
    "INSERT INTO deferred (approval_id, agent, digest, created_ms, passed_ms) VALUES ($1, $2, $3, $4, NULL)";
/// `$1` agent, `$2` digest: the newest unpassed deferral of this request, with its approval's state.
pub(crate) const LATEST: &str = "SELECT d.approval_id, a.state, a.decided_ms FROM deferred d \
     JOIN approvals a ON a.id = d.approval_id \
     WHERE d.agent = $1 AND d.digest = $2 AND d.passed_ms IS NULL \
     ORDER BY d.created_ms DESC LIMIT 1";
/// `$1` approval id, `$2` now: only once, only once approved.
pub(crate) const PASS: &str = "UPDATE deferred SET passed_ms = $2 WHERE approval_id = $1 AND passed_ms IS NULL \
     AND EXISTS (SELECT 1 FROM approvals a WHERE a.id = $1 AND a.state = 'approved')";

/// The backend operations for defer mode (after `store_ops!()`).
macro_rules! deferred_ops {
    () => {
        pub(crate) async fn defer_add(
            pool: &DbPool,
            approval_id: &str,
            agent: &str,
            digest: &str,
            now_ms: i64,
        ) -> Result<(), StoreError> {
            sqlx::query($crate::deferred_ops::ADD)
                .bind(approval_id)
                .bind(agent)
                .bind(digest)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn defer_latest(
            pool: &DbPool,
            agent: &str,
            digest: &str,
        ) -> Result<Option<(String, String, Option<i64>)>, StoreError> {
            let row = sqlx::query($crate::deferred_ops::LATEST)
                .bind(agent)
                .bind(digest)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            let at = At::table("deferred");
            row.map(|r| {
                let decided = $crate::ops::nullable(&r, "decided_ms", || int(&r, "decided_ms", at))?;
                Ok((text(&r, "approval_id", at)?, text(&r, "state", at)?, decided))
            })
            .transpose()
        }

        pub(crate) async fn defer_pass(pool: &DbPool, approval_id: &str, now_ms: i64) -> Result<bool, StoreError> {
            let r = sqlx::query($crate::deferred_ops::PASS)
                .bind(approval_id)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() == 1)
        }
    };
}

pub(crate) use deferred_ops;
