//! The approvals side of [`crate::approvals`]: `approval_ops!()` expands inside a backend module
//! next to `store_ops!()` (whose decoders and pool type it uses). The SQL runs unchanged on
//! SQLite and PostgreSQL (`$n`, `ON CONFLICT`, no `RETURNING`).

/// Approvals, votes, sent cards, grants, passwords and dashboard sessions.
macro_rules! approval_ops {
    () => {
        use $crate::{ApprovalRow, GrantRow, MessageRow, SessionRow, VoteRow};

        const APPROVAL_COLS: &str =
            "id, agent, host, digest, card, state, created_ms, expires_ms, decided_ms, status, replica";

        fn approval_row(r: &DbRow) -> Result<ApprovalRow, StoreError> {
            let id = text(r, "id", At::table("approvals"))?;
            let at = At::table("approvals");
            let at = at.key(&id);
            Ok(ApprovalRow {
                agent: text(r, "agent", at)?,
                host: text(r, "host", at)?,
                digest: text(r, "digest", at)?,
                card: blob(r, "card", at)?,
                state: text(r, "state", at)?,
                created_ms: int(r, "created_ms", at)?,
                expires_ms: int(r, "expires_ms", at)?,
                decided_ms: $crate::ops::nullable(r, "decided_ms", || int(r, "decided_ms", at))?,
                status: $crate::ops::nullable(r, "status", || blob(r, "status", at))?,
                replica: $crate::ops::nullable(r, "replica", || text(r, "replica", at))?,
                id: id.clone(),
            })
        }

        pub(crate) async fn insert_approval(pool: &DbPool, a: &ApprovalRow) -> Result<(), StoreError> {
            let mut tx = pool.begin().await.map_err(db)?;
            sqlx::query(
                "INSERT INTO approvals (id, agent, host, digest, card, state, created_ms, expires_ms, decided_ms, status, \
                 replica) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&a.id)
            .bind(&a.agent)
            .bind(&a.host)
            .bind(&a.digest)
            .bind(&a.card)
            .bind(&a.state)
            .bind(a.created_ms)
            .bind(a.expires_ms)
            .bind(a.decided_ms)
            .bind(a.status.as_deref())
            .bind(a.replica.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(|e| err(e, || format!("approval {:?}", a.id)))?;
            // Every replica's dashboard shows it at once.
            announce(&mut tx, &$crate::cluster::approval_topic(&a.id)).await?;
            tx.commit().await.map_err(db)
        }

        pub(crate) async fn close_approval(
            pool: &DbPool,
            id: &str,
            state: &str,
            decided_ms: i64,
            status: &[u8],
        ) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await.map_err(db)?;
            let closed = close_in(&mut tx, id, state, decided_ms, status).await?;
            tx.commit().await.map_err(db)?;
            Ok(closed)
        }

        /// The closing update inside `tx`, announced to every replica when it moved the row.
        async fn close_in(
            tx: &mut sqlx::Transaction<'static, Db>,
            id: &str,
            state: &str,
            decided_ms: i64,
            status: &[u8],
        ) -> Result<bool, StoreError> {
            let r = sqlx::query(
                "UPDATE approvals SET state = $2, decided_ms = $3, status = $4 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(state)
            .bind(decided_ms)
            .bind(status)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            let closed = r.rows_affected() == 1;
            if closed {
                announce(tx, &$crate::cluster::approval_topic(id)).await?;
            }
            Ok(closed)
        }

        pub(crate) async fn get_approval(pool: &DbPool, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
            let q = format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = $1");
            let row = sqlx::query(&q).bind(id).fetch_optional(pool).await.map_err(db)?;
            row.as_ref().map(approval_row).transpose()
        }

        pub(crate) async fn list_approvals(
            pool: &DbPool,
            state: Option<&str>,
            limit: i64,
        ) -> Result<Vec<ApprovalRow>, StoreError> {
            let rows = match state {
                Some(s) => {
                    let q =
                        format!("SELECT {APPROVAL_COLS} FROM approvals WHERE state = $1 ORDER BY created_ms DESC, id LIMIT $2");
                    sqlx::query(&q).bind(s).bind(limit).fetch_all(pool).await
                }
                None => {
                    let q = format!("SELECT {APPROVAL_COLS} FROM approvals ORDER BY created_ms DESC, id LIMIT $1");
                    sqlx::query(&q).bind(limit).fetch_all(pool).await
                }
            }
            .map_err(db)?;
            rows.iter().map(approval_row).collect()
        }

        /// Pending approvals oldest first: the order a person works through them.
        pub(crate) async fn pending_oldest_first(pool: &DbPool, limit: i64) -> Result<Vec<ApprovalRow>, StoreError> {
            let q = format!(
                "SELECT {APPROVAL_COLS} FROM approvals WHERE state = 'pending' ORDER BY created_ms, id LIMIT $1"
            );
            let rows = sqlx::query(&q).bind(limit).fetch_all(pool).await.map_err(db)?;
            rows.iter().map(approval_row).collect()
        }

        pub(crate) async fn count_approvals(pool: &DbPool, state: Option<&str>) -> Result<i64, StoreError> {
            let row = match state {
                Some(s) => {
                    sqlx::query("SELECT COUNT(*) AS n FROM approvals WHERE state = $1")
                        .bind(s)
                        .fetch_one(pool)
                        .await
                }
                None => sqlx::query("SELECT COUNT(*) AS n FROM approvals").fetch_one(pool).await,
            }
            .map_err(db)?;
            int(&row, "n", At::table("approvals"))
        }

        pub(crate) async fn add_vote<'e, E: sqlx::Executor<'e, Database = Db>>(
            pool: E,
            v: &VoteRow,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO approval_votes (approval_id, person, approve, grant_asked, channel, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&v.approval_id)
            .bind(&v.person)
            .bind(i64::from(v.approve))
            .bind(i64::from(v.grant))
            .bind(&v.channel)
            .bind(v.at_ms)
            .execute(pool)
            .await
            .map_err(|e| err(e, || format!("vote by {:?} on approval {:?}", v.person, v.approval_id)))?;
            Ok(())
        }

        pub(crate) async fn votes<'e, E: sqlx::Executor<'e, Database = Db>>(
            pool: E,
            approval_id: &str,
        ) -> Result<Vec<VoteRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT approval_id, person, approve, grant_asked, channel, at_ms FROM approval_votes \
                 WHERE approval_id = $1 ORDER BY at_ms, person",
            )
            .bind(approval_id)
            .fetch_all(pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let at = At::table("approval_votes").key(approval_id);
                    Ok(VoteRow {
                        approval_id: text(r, "approval_id", at)?,
                        person: text(r, "person", at)?,
                        approve: int(r, "approve", at)? != 0,
                        grant: int(r, "grant_asked", at)? != 0,
                        channel: text(r, "channel", at)?,
                        at_ms: int(r, "at_ms", at)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn add_message(pool: &DbPool, m: &MessageRow) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO approval_messages (approval_id, channel, person, message_ref) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (approval_id, channel, person) DO UPDATE SET message_ref = excluded.message_ref",
            )
            .bind(&m.approval_id)
            .bind(&m.channel)
            .bind(&m.person)
            .bind(&m.message_ref)
            .execute(pool)
            .await
            .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn messages(pool: &DbPool, approval_id: &str) -> Result<Vec<MessageRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT approval_id, channel, person, message_ref FROM approval_messages WHERE approval_id = $1 \
                 ORDER BY channel, person",
            )
            .bind(approval_id)
            .fetch_all(pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let at = At::table("approval_messages").key(approval_id);
                    Ok(MessageRow {
                        approval_id: text(r, "approval_id", at)?,
                        channel: text(r, "channel", at)?,
                        person: text(r, "person", at)?,
                        message_ref: text(r, "message_ref", at)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn add_grant(pool: &DbPool, g: &GrantRow) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO grants (id, agent, rule, host, granted_by, approval_id, created_ms, expires_ms, revoked_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&g.id)
            .bind(&g.agent)
            .bind(&g.rule)
            .bind(&g.host)
            .bind(&g.granted_by)
            .bind(&g.approval_id)
            .bind(g.created_ms)
            .bind(g.expires_ms)
            .bind(g.revoked_ms)
            .execute(pool)
            .await
            .map_err(|e| err(e, || format!("grant {:?}", g.id)))?;
            Ok(())
        }

        pub(crate) async fn active_grants(pool: &DbPool, now_ms: i64) -> Result<Vec<GrantRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, agent, rule, host, granted_by, approval_id, created_ms, expires_ms, revoked_ms FROM grants \
                 WHERE revoked_ms IS NULL AND expires_ms > $1 ORDER BY created_ms DESC, id",
            )
            .bind(now_ms)
            .fetch_all(pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let id = text(r, "id", At::table("grants"))?;
                    let at = At::table("grants");
                    let at = at.key(&id);
                    Ok(GrantRow {
                        agent: text(r, "agent", at)?,
                        rule: text(r, "rule", at)?,
                        host: text(r, "host", at)?,
                        granted_by: text(r, "granted_by", at)?,
                        approval_id: text(r, "approval_id", at)?,
                        created_ms: int(r, "created_ms", at)?,
                        expires_ms: int(r, "expires_ms", at)?,
                        revoked_ms: None,
                        id: id.clone(),
                    })
                })
                .collect()
        }

        pub(crate) async fn revoke_grant(pool: &DbPool, id: &str, now_ms: i64) -> Result<bool, StoreError> {
            let r = sqlx::query("UPDATE grants SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL AND expires_ms > $2")
                .bind(id)
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() == 1)
        }

        pub(crate) async fn set_password(pool: &DbPool, person: &str, phc: &str, now_ms: i64) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO people_passwords (person, hash, updated_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (person) DO UPDATE SET hash = excluded.hash, updated_ms = excluded.updated_ms",
            )
            .bind(person)
            .bind(phc)
            .bind(now_ms)
            .execute(pool)
            .await
            .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn password(pool: &DbPool, person: &str) -> Result<Option<String>, StoreError> {
            let row = sqlx::query("SELECT hash FROM people_passwords WHERE person = $1")
                .bind(person)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            row.map(|r| text(&r, "hash", At::table("people_passwords").key(person)))
                .transpose()
        }

        pub(crate) async fn put_session(pool: &DbPool, s: &SessionRow) -> Result<(), StoreError> {
            sqlx::query("INSERT INTO web_sessions (token_hash, person, csrf, expires_ms) VALUES ($1, $2, $3, $4)")
                .bind(&s.token_hash)
                .bind(&s.person)
                .bind(&s.csrf)
                .bind(s.expires_ms)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn session(
            pool: &DbPool,
            token_hash: &[u8],
            now_ms: i64,
        ) -> Result<Option<SessionRow>, StoreError> {
            let row = sqlx::query(
                "SELECT token_hash, person, csrf, expires_ms FROM web_sessions WHERE token_hash = $1 AND expires_ms > $2",
            )
            .bind(token_hash)
            .bind(now_ms)
            .fetch_optional(pool)
            .await
            .map_err(db)?;
            row.map(|r| {
                let at = At::table("web_sessions");
                Ok(SessionRow {
                    token_hash: blob(&r, "token_hash", at)?,
                    person: text(&r, "person", at)?,
                    csrf: text(&r, "csrf", at)?,
                    expires_ms: int(&r, "expires_ms", at)?,
                })
            })
            .transpose()
        }

        pub(crate) async fn delete_session(pool: &DbPool, token_hash: &[u8]) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }
    };
}

pub(crate) use approval_ops;
