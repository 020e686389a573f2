//! The scale-out side of [`crate::cluster`]: `cluster_ops!()` expands inside a backend module next
//! to `store_ops!()` and `approval_ops!()`. The backend supplies `begin_write` (a transaction that
//! serializes writers of the rows it locks), `LOCK_ROW` (`FOR UPDATE` on PostgreSQL; SQLite's
//! `BEGIN IMMEDIATE` already holds the database's write lock) and `NOTIFY` (PostgreSQL's
//! `pg_notify`, delivered to every replica at commit; none on SQLite, which one process owns).

/// Vote counting, replica leases and the queries survivors and the polling fallback run.
macro_rules! cluster_ops {
    () => {
        use $crate::cluster::Tally;

        /// Tells every replica listening that `topic` changed, when `tx` commits.
        async fn announce(tx: &mut sqlx::Transaction<'static, Db>, topic: &str) -> Result<(), StoreError> {
            if let Some(q) = NOTIFY {
                sqlx::query(q).bind(topic).execute(&mut **tx).await.map_err(db)?;
            }
            Ok(())
        }

        pub(crate) async fn notify(pool: &DbPool, topic: &str) -> Result<(), StoreError> {
            let mut tx = pool.begin().await.map_err(db)?;
            announce(&mut tx, topic).await?;
            tx.commit().await.map_err(db)
        }

        /// See [`Store::count_vote_audited`](crate::Store::count_vote_audited).
        pub(crate) async fn count_vote<R: Send>(
            pool: &DbPool,
            vote: &VoteRow,
            decide: impl FnOnce(&ApprovalRow, &[VoteRow]) -> (Tally<R>, Vec<(i64, Vec<u8>)>) + Send,
        ) -> Result<Option<Tally<R>>, StoreError> {
            let mut tx = begin_write(pool).await?;
            let q = format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = $1{LOCK_ROW}");
            let row = sqlx::query(&q)
                .bind(&vote.approval_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(row) = row.as_ref().map(approval_row).transpose()? else {
                return Ok(None);
            };
            let earlier = votes(&mut *tx, &vote.approval_id).await?;
            let (tally, records) = decide(&row, &earlier);
            match &tally {
                Tally::Refuse(_) => return Ok(Some(tally)),
                Tally::Record(_) => add_vote(&mut *tx, vote).await?,
                Tally::Close { state, status, .. } => {
                    add_vote(&mut *tx, vote).await?;
                    // Under the row lock the row is still pending, so this moves it.
                    if !close_in(&mut tx, &row.id, state, vote.at_ms, status).await? {
                        return Err(StoreError::NotFound {
                            what: format!("pending approval {:?}", row.id),
                        });
                    }
                }
            }
            if matches!(tally, Tally::Record(_)) {
                announce(&mut tx, &$crate::cluster::approval_topic(&row.id)).await?;
            }
            // The vote's audit records commit with it: no replica can see it counted (or the
            // approval closed, and forward) before its records are in the chain.
            if !records.is_empty() {
                lock_appenders(&mut tx).await?;
                append_in(&mut tx, None, &records).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(Some(tally))
        }

        pub(crate) async fn replica_alive(
            pool: &DbPool,
            id: &str,
            started_ms: i64,
            expires_ms: i64,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO replicas (id, started_ms, expires_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET expires_ms = excluded.expires_ms",
            )
            .bind(id)
            .bind(started_ms)
            .bind(expires_ms)
            .execute(pool)
            .await
            .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn set_replica_policy(pool: &DbPool, id: &str, sha256: &str) -> Result<(), StoreError> {
            sqlx::query("UPDATE replicas SET policy_sha256 = $2 WHERE id = $1")
                .bind(id)
                .bind(sha256)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn live_replicas(pool: &DbPool, now_ms: i64) -> Result<Vec<(String, Option<String>)>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, policy_sha256 FROM replicas WHERE expires_ms > $1 ORDER BY started_ms, id",
            )
            .bind(now_ms)
            .fetch_all(pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let id = text(r, "id", At::table("replicas"))?;
                    let at = At::table("replicas").key(&id);
                    let sha = $crate::ops::nullable(r, "policy_sha256", || text(r, "policy_sha256", at))?;
                    Ok((id, sha))
                })
                .collect()
        }

        pub(crate) async fn replica_gone(pool: &DbPool, id: &str, forget_before_ms: i64) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM replicas WHERE id = $1 OR expires_ms < $2")
                .bind(id)
                .bind(forget_before_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn orphaned_approvals(pool: &DbPool, now_ms: i64) -> Result<Vec<ApprovalRow>, StoreError> {
            let q = format!(
                "SELECT {APPROVAL_COLS} FROM approvals a WHERE state = 'pending' AND NOT EXISTS \
                 (SELECT 1 FROM replicas r WHERE r.id = a.replica AND r.expires_ms > $1) ORDER BY created_ms, id"
            );
            let rows = sqlx::query(&q).bind(now_ms).fetch_all(pool).await.map_err(db)?;
            rows.iter().map(approval_row).collect()
        }

        pub(crate) async fn overdue_approvals(pool: &DbPool, before_ms: i64) -> Result<Vec<ApprovalRow>, StoreError> {
            let q = format!(
                "SELECT {APPROVAL_COLS} FROM approvals WHERE state = 'pending' AND expires_ms < $1 \
                 ORDER BY created_ms, id"
            );
            let rows = sqlx::query(&q).bind(before_ms).fetch_all(pool).await.map_err(db)?;
            rows.iter().map(approval_row).collect()
        }

        pub(crate) async fn decided_among(pool: &DbPool, ids: &[String]) -> Result<Vec<ApprovalRow>, StoreError> {
            let mut out = Vec::new();
            for chunk in ids.chunks(500) {
                let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                    "SELECT {APPROVAL_COLS} FROM approvals WHERE state <> 'pending' AND id IN ("
                ));
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id);
                }
                q.push(") ORDER BY id");
                let rows = q.build().fetch_all(pool).await.map_err(db)?;
                for r in &rows {
                    out.push(approval_row(r)?);
                }
            }
            Ok(out)
        }
    };
}

pub(crate) use cluster_ops;
