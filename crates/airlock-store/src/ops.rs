//! The operations behind [`Store`](crate::Store), written once for every backend.
//!
//! `store_ops!(Db, blob, int, text)` expands, inside a backend module, to strict row decoding and
//! the operations on that `sqlx::Database`, given the names its values' `type_info()` reports for
//! the schema's three column types, and using the module's `err`/`db` error mappers. A macro rather than generic functions: generic sqlx code needs an `Encode + Type`
//! bound per bound value type on every function, which buries the SQL it is about.
//!
//! Rows read back are checked value by value: SQLite columns are dynamically typed, and a
//! PostgreSQL column can be altered or have its `NOT NULL` dropped. A value of the wrong type, or
//! a NULL, is [`StoreError::Corrupt`] naming the row — never a panic.

use sqlx::{ColumnIndex, Row, TypeInfo, ValueRef};

use crate::error::StoreError;

/// Which row a column belongs to, for `Corrupt` messages.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    table: &'static str,
    key: Option<&'a str>,
    seq: Option<i64>,
}

impl<'a> At<'a> {
    pub(crate) fn table(table: &'static str) -> Self {
        At {
            table,
            key: None,
            seq: None,
        }
    }
    pub(crate) fn key(self, key: &'a str) -> Self {
        At { key: Some(key), ..self }
    }
    pub(crate) fn seq(self, seq: i64) -> Self {
        At { seq: Some(seq), ..self }
    }
    fn corrupt(self, col: &str, problem: &str) -> StoreError {
        let what = match (self.key, self.seq) {
            (Some(k), _) => format!("{} row {k:?}: column {col} {problem}", self.table),
            (None, Some(s)) => format!("{} row seq {s}: column {col} {problem}", self.table),
            (None, None) => format!("{}: column {col} {problem}", self.table),
        };
        StoreError::Corrupt { what, seq: self.seq }
    }
}

/// Checks the value's type (`want`, the backend's name for it) before decoding it.
pub(crate) fn checked<'r, R, T>(row: &'r R, col: &str, want: &str, at: At<'_>) -> Result<T, StoreError>
where
    R: Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    let raw = row
        .try_get_raw(col)
        .map_err(|e| at.corrupt(col, &format!("unreadable: {e}")))?;
    if raw.is_null() {
        return Err(at.corrupt(col, "is NULL"));
    }
    let has = raw.type_info().name().to_owned();
    if has != want {
        return Err(at.corrupt(col, &format!("holds {has}, expected {want}")));
    }
    row.try_get::<T, _>(col)
        .map_err(|e| at.corrupt(col, &format!("undecodable: {e}")))
}

/// True when the column holds NULL (for the schema's nullable columns).
pub(crate) fn is_null<R: Row>(row: &R, col: &str) -> bool
where
    for<'c> &'c str: ColumnIndex<R>,
{
    row.try_get_raw(col).map(|v| v.is_null()).unwrap_or(false)
}

/// Meta, agents, secrets, the audit chain and checkpoints. See the module docs. Also brings
/// `StoreError`, `At`, the row types and `sql` into the backend module, and defines `DbPool`,
/// `DbRow` and the decoders `blob`, `int` and `text` that `approval_ops!` uses too.
macro_rules! store_ops {
    ($db:ty, blob = $blob:literal, int = $int:literal, text = $text:literal) => {
        use $crate::error::StoreError;
        use $crate::ops::At;
        use $crate::{AgentRow, AuditRow, CheckpointRow, SecretRow, sql};

        type Db = $db;
        type DbPool = sqlx::Pool<Db>;
        type DbRow = <Db as sqlx::Database>::Row;
        type DbQuery<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

        fn blob(row: &DbRow, col: &str, at: At<'_>) -> Result<Vec<u8>, StoreError> {
            $crate::ops::checked::<_, Vec<u8>>(row, col, $blob, at)
        }

        fn int(row: &DbRow, col: &str, at: At<'_>) -> Result<i64, StoreError> {
            $crate::ops::checked::<_, i64>(row, col, $int, at)
        }

        fn text(row: &DbRow, col: &str, at: At<'_>) -> Result<String, StoreError> {
            $crate::ops::checked::<_, String>(row, col, $text, at)
        }

        fn agent_row(row: &DbRow) -> Result<AgentRow, StoreError> {
            let at = At::table("agents");
            let name = text(row, "name", at)?;
            let at = at.key(&name);
            Ok(AgentRow {
                token_hash: blob(row, "token_hash", at)?,
                created_ms: int(row, "created_ms", at)?,
                name,
            })
        }

        fn secret_row(row: &DbRow) -> Result<SecretRow, StoreError> {
            let at = At::table("secrets");
            let name = text(row, "name", at)?;
            let at = at.key(&name);
            Ok(SecretRow {
                version: int(row, "version", at)?,
                key_id: text(row, "key_id", at)?,
                nonce: blob(row, "nonce", at)?,
                ciphertext: blob(row, "ciphertext", at)?,
                updated_ms: int(row, "updated_ms", at)?,
                name,
            })
        }

        fn audit_row(row: &DbRow) -> Result<AuditRow, StoreError> {
            let at = At::table("audit_records");
            let seq = int(row, "seq", at)?;
            let at = at.seq(seq);
            Ok(AuditRow {
                seq,
                ts_ms: int(row, "ts_ms", at)?,
                prev_hash: blob(row, "prev_hash", at)?,
                hash: blob(row, "hash", at)?,
                body: blob(row, "body", at)?,
            })
        }

        fn checkpoint_row(row: &DbRow) -> Result<CheckpointRow, StoreError> {
            let at = At::table("audit_checkpoints");
            let seq = int(row, "seq", at)?;
            let at = at.seq(seq);
            Ok(CheckpointRow {
                seq,
                hash: blob(row, "hash", at)?,
                signature: blob(row, "signature", at)?,
                public_key: blob(row, "public_key", at)?,
                ts_ms: int(row, "ts_ms", at)?,
            })
        }

        pub(crate) async fn get_meta(pool: &DbPool, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            let row = sqlx::query(sql::GET_META)
                .bind(key)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            row.map(|r| blob(&r, "value", At::table("meta").key(key)))
                .transpose()
        }

        pub(crate) async fn set_meta(pool: &DbPool, key: &str, value: &[u8]) -> Result<(), StoreError> {
            write_meta(pool, sql::SET_META, key, value).await
        }

        pub(crate) async fn meta_insert_or_get(pool: &DbPool, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
            write_meta(pool, sql::INSERT_META_IF_ABSENT, key, value).await?;
            // A separate statement: on PostgreSQL it takes a fresh snapshot, so it sees the row of
            // a concurrent inserter that won (ON CONFLICT waited for that one to commit).
            get_meta(pool, key).await?.ok_or_else(|| StoreError::NotFound {
                what: format!("meta {key:?} (removed while being read)"),
            })
        }

        async fn write_meta(pool: &DbPool, statement: &'static str, key: &str, value: &[u8]) -> Result<(), StoreError> {
            sqlx::query(statement)
                .bind(key)
                .bind(value)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        pub(crate) async fn add_agent(pool: &DbPool, a: &AgentRow) -> Result<(), StoreError> {
            sqlx::query(sql::ADD_AGENT)
                .bind(&a.name)
                .bind(&a.token_hash)
                .bind(a.created_ms)
                .execute(pool)
                .await
                .map_err(|e| err(e, || format!("agent {:?}", a.name)))?;
            Ok(())
        }

        pub(crate) async fn list_agents(pool: &DbPool) -> Result<Vec<AgentRow>, StoreError> {
            let rows = sqlx::query(sql::LIST_AGENTS).fetch_all(pool).await.map_err(db)?;
            rows.iter().map(agent_row).collect()
        }

        pub(crate) async fn remove_agent(pool: &DbPool, name: &str) -> Result<bool, StoreError> {
            let r = sqlx::query(sql::REMOVE_AGENT)
                .bind(name)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() > 0)
        }

        pub(crate) async fn put_secret(pool: &DbPool, s: &SecretRow) -> Result<(), StoreError> {
            bind_secret(sqlx::query(sql::PUT_SECRET), s)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
        }

        fn bind_secret<'q>(q: DbQuery<'q>, s: &'q SecretRow) -> DbQuery<'q> {
            q.bind(&s.name)
                .bind(s.version)
                .bind(&s.key_id)
                .bind(&s.nonce)
                .bind(&s.ciphertext)
                .bind(s.updated_ms)
        }

        pub(crate) async fn get_secret(pool: &DbPool, name: &str) -> Result<Option<SecretRow>, StoreError> {
            let row = sqlx::query(sql::GET_SECRET)
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            row.as_ref().map(secret_row).transpose()
        }

        pub(crate) async fn list_secrets(pool: &DbPool) -> Result<Vec<SecretRow>, StoreError> {
            let rows = sqlx::query(sql::LIST_SECRETS).fetch_all(pool).await.map_err(db)?;
            rows.iter().map(secret_row).collect()
        }

        pub(crate) async fn remove_secret(pool: &DbPool, name: &str) -> Result<bool, StoreError> {
            let r = sqlx::query(sql::REMOVE_SECRET)
                .bind(name)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(r.rows_affected() > 0)
        }

        pub(crate) async fn replace_secrets_atomically(pool: &DbPool, rows: &[SecretRow]) -> Result<(), StoreError> {
            let mut tx = pool.begin().await.map_err(db)?;
            for s in rows {
                let r = bind_secret(sqlx::query(sql::UPDATE_SECRET), s)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if r.rows_affected() != 1 {
                    // Dropping `tx` rolls back every update made so far.
                    return Err(StoreError::NotFound {
                        what: format!("secret {:?}", s.name),
                    });
                }
            }
            tx.commit().await.map_err(db)
        }

        pub(crate) async fn append_audit(pool: &DbPool, rows: &[AuditRow]) -> Result<(), StoreError> {
            let mut tx = pool.begin().await.map_err(db)?;
            // One multi-row INSERT per chunk: every statement is a round trip (to sqlx's SQLite
            // worker thread, or to the PostgreSQL server), which costs more than the insert itself.
            for chunk in rows.chunks(sql::APPEND_AUDIT_CHUNK) {
                let mut q = sqlx::QueryBuilder::<Db>::new(sql::APPEND_AUDIT_MANY);
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.seq)
                        .push_bind(r.ts_ms)
                        .push_bind(&r.prev_hash)
                        .push_bind(&r.hash)
                        .push_bind(&r.body);
                });
                if let Err(batch_err) = q.build().execute(&mut *tx).await {
                    // PostgreSQL refuses every later statement of a failed transaction, so the
                    // record at fault is found by replaying the batch in a fresh one.
                    let _ = tx.rollback().await;
                    return Err(audit_offender(pool, rows).await.unwrap_or_else(|| db(batch_err)));
                }
            }
            tx.commit().await.map_err(db)
        }

        /// Inserts `rows` one by one in a transaction that is rolled back, and returns the first
        /// failure with the record it names (`None` if every row went in this time).
        async fn audit_offender(pool: &DbPool, rows: &[AuditRow]) -> Option<StoreError> {
            let mut tx = pool.begin().await.ok()?;
            for r in rows {
                let inserted = sqlx::query(sql::APPEND_AUDIT)
                    .bind(r.seq)
                    .bind(r.ts_ms)
                    .bind(&r.prev_hash)
                    .bind(&r.hash)
                    .bind(&r.body)
                    .execute(&mut *tx)
                    .await;
                if let Err(e) = inserted {
                    let _ = tx.rollback().await;
                    return Some(err(e, || format!("audit record seq {}", r.seq)));
                }
            }
            let _ = tx.rollback().await;
            None
        }

        pub(crate) async fn audit_head(pool: &DbPool) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
            let Some(row) = sqlx::query(sql::AUDIT_HEAD)
                .fetch_optional(pool)
                .await
                .map_err(db)?
            else {
                return Ok(None);
            };
            let at = At::table("audit_records");
            let seq = int(&row, "seq", at)?;
            Ok(Some((seq, blob(&row, "hash", at.seq(seq))?)))
        }

        pub(crate) async fn audit_page(
            pool: &DbPool,
            after: i64,
            upto: i64,
            limit: i64,
        ) -> Result<Vec<AuditRow>, StoreError> {
            let rows = sqlx::query(sql::AUDIT_PAGE)
                .bind(after)
                .bind(upto)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db)?;
            rows.iter().map(audit_row).collect()
        }

        pub(crate) async fn audit_tail(pool: &DbPool, n: i64) -> Result<Vec<AuditRow>, StoreError> {
            let rows = sqlx::query(sql::AUDIT_TAIL)
                .bind(n)
                .fetch_all(pool)
                .await
                .map_err(db)?;
            rows.iter().map(audit_row).collect()
        }

        pub(crate) async fn put_checkpoint(pool: &DbPool, c: &CheckpointRow) -> Result<(), StoreError> {
            sqlx::query(sql::PUT_CHECKPOINT)
                .bind(c.seq)
                .bind(&c.hash)
                .bind(&c.signature)
                .bind(&c.public_key)
                .bind(c.ts_ms)
                .execute(pool)
                .await
                .map_err(|e| err(e, || format!("audit checkpoint seq {}", c.seq)))?;
            Ok(())
        }

        pub(crate) async fn checkpoints(pool: &DbPool) -> Result<Vec<CheckpointRow>, StoreError> {
            let rows = sqlx::query(sql::CHECKPOINTS).fetch_all(pool).await.map_err(db)?;
            rows.iter().map(checkpoint_row).collect()
        }

        pub(crate) async fn last_checkpoint(pool: &DbPool) -> Result<Option<CheckpointRow>, StoreError> {
            let row = sqlx::query(sql::LAST_CHECKPOINT)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            row.as_ref().map(checkpoint_row).transpose()
        }
    };
}

pub(crate) use store_ops;
