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

use airlock_core::audit::{GENESIS, chain_hash};
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

/// A nullable column: `None` when it holds NULL, else what `read` decodes (checked as usual).
pub(crate) fn nullable<R: Row, T>(
    row: &R,
    col: &str,
    read: impl FnOnce() -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError>
where
    for<'c> &'c str: ColumnIndex<R>,
{
    if row.try_get_raw(col).map(|v| v.is_null()).unwrap_or(false) {
        return Ok(None);
    }
    read().map(Some)
}

/// One record's place in the chain, as [`links`] computes it.
pub(crate) struct Link {
    pub(crate) seq: i64,
    pub(crate) prev: [u8; 32],
    pub(crate) hash: [u8; 32],
}

/// Chains `events` (`(ts_ms, body)`) onto the stored `head` (the last record's `(seq, hash)`,
/// `None` for an empty log) — or onto `after`, the writer's own last record, unless the head has
/// moved past it (see [`Batch::after`](crate::Batch::after)). A stored head that is not a valid
/// link is [`StoreError::Corrupt`]: extending it would bury the damage.
pub(crate) fn links(
    head: Option<(i64, Vec<u8>)>,
    after: Option<(i64, [u8; 32])>,
    events: &[(i64, Vec<u8>)],
) -> Result<Vec<Link>, StoreError> {
    let corrupt = |seq: i64, what: &str| StoreError::Corrupt {
        what: format!("audit head: {what}"),
        seq: Some(seq),
    };
    let head_seq = head.as_ref().map_or(0, |(seq, _)| *seq);
    let (mut seq, mut prev) = match (head, after) {
        (_, Some(own)) if head_seq <= own.0 => own,
        (None, _) => (0, GENESIS),
        (Some((seq, _)), _) if seq < 0 => return Err(corrupt(seq, "negative seq")),
        (Some((seq, hash)), _) => (seq, hash.try_into().map_err(|_| corrupt(seq, "hash is not 32 bytes"))?),
    };
    let mut links = Vec::with_capacity(events.len());
    for (_, body) in events {
        seq = seq.checked_add(1).ok_or_else(|| corrupt(seq, "seq at its maximum"))?;
        let hash = chain_hash(&prev, seq.unsigned_abs(), body);
        links.push(Link { seq, prev, hash });
        prev = hash;
    }
    Ok(links)
}

/// The position of a batch found stored from `first_seq`, if `rows` are exactly its `events`.
pub(crate) fn same_batch(
    first_seq: i64,
    rows: &[crate::AuditRow],
    events: &[(i64, Vec<u8>)],
) -> Result<crate::Chained, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: format!("audit_writers: the batch recorded at seq {first_seq} is not the batch being retried"),
        seq: Some(first_seq),
    };
    let same = rows.len() == events.len()
        && rows
            .iter()
            .zip(events)
            .all(|(r, (ts_ms, body))| r.ts_ms == *ts_ms && r.body == *body);
    if !same {
        return Err(corrupt());
    }
    let hashes = rows
        .iter()
        .map(|r| <[u8; 32]>::try_from(r.hash.as_slice()).map_err(|_| corrupt()))
        .collect::<Result<_, _>>()?;
    Ok(crate::Chained { first_seq, hashes })
}

/// Meta, agents, secrets, the audit chain and checkpoints. See the module docs. Also brings
/// `StoreError`, `At`, the row types and `sql` into the backend module, and defines `DbPool`,
/// `DbRow` and the decoders `blob`, `int` and `text` that `approval_ops!` uses too.
macro_rules! store_ops {
    ($db:ty, blob = $blob:literal, int = $int:literal, text = $text:literal) => {
        use $crate::error::StoreError;
        use $crate::ops::At;
        use $crate::{AgentRow, AuditRow, Batch, Chained, CheckpointRow, SecretRow, sql};

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

        pub(crate) async fn delete_meta(pool: &DbPool, key: &str) -> Result<(), StoreError> {
            sqlx::query(sql::DELETE_META)
                .bind(key)
                .execute(pool)
                .await
                .map_err(db)?;
            Ok(())
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

        /// See [`Store::append_audit_chained`](crate::Store::append_audit_chained). `begin_append`
        /// is the backend's: a transaction that holds the lock serializing appenders.
        pub(crate) async fn append_audit_chained(
            pool: &DbPool,
            batch: Batch,
            events: &[(i64, Vec<u8>)],
        ) -> Result<Chained, StoreError> {
            let mut tx = begin_append(pool).await?;
            if let Some(landed) = landed_batch(&mut tx, batch, events).await? {
                return Ok(landed);
            }
            let chained = append_in(&mut tx, batch.after, events).await?;
            sqlx::query(sql::RECORD_WRITER_BATCH)
                .bind(&batch.writer[..])
                .bind(batch.number)
                .bind(chained.first_seq)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(chained)
        }

        /// Appends `events` inside `tx`, which must hold the appenders' lock (`begin_append`, or
        /// `lock_appenders` in a transaction of its own): the records commit with whatever else
        /// `tx` writes, or not at all.
        pub(crate) async fn append_in(
            tx: &mut sqlx::Transaction<'static, Db>,
            after: Option<(i64, [u8; 32])>,
            events: &[(i64, Vec<u8>)],
        ) -> Result<Chained, StoreError> {
            // Read under the lock: no other appender can move the head before this commits.
            let head = audit_head(&mut **tx).await?;
            let links = $crate::ops::links(head, after, events)?;
            let first_seq = links.first().map_or(1, |l| l.seq);
            let rows: Vec<_> = links.iter().zip(events).collect();
            // One multi-row INSERT per chunk: every statement is a round trip (to sqlx's SQLite
            // worker thread, or to the PostgreSQL server), which costs more than the insert itself.
            for chunk in rows.chunks(sql::APPEND_AUDIT_CHUNK) {
                let mut q = sqlx::QueryBuilder::<Db>::new(sql::APPEND_AUDIT_MANY);
                q.push_values(chunk, |mut b, (link, (ts_ms, body))| {
                    b.push_bind(link.seq)
                        .push_bind(*ts_ms)
                        .push_bind(&link.prev[..])
                        .push_bind(&link.hash[..])
                        .push_bind(&body[..]);
                });
                q.build()
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| err(e, || format!("audit records from seq {first_seq}")))?;
            }
            Ok(Chained {
                first_seq,
                hashes: links.iter().map(|l| l.hash).collect(),
            })
        }

        /// Where `batch` landed, if it is the last batch its writer committed (only then can a
        /// retry be a duplicate: a writer never starts a batch before the previous one is in).
        async fn landed_batch(
            tx: &mut sqlx::Transaction<'static, Db>,
            batch: Batch,
            events: &[(i64, Vec<u8>)],
        ) -> Result<Option<Chained>, StoreError> {
            let Some(row) = sqlx::query(sql::WRITER_BATCH)
                .bind(&batch.writer[..])
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?
            else {
                return Ok(None);
            };
            let at = At::table("audit_writers");
            if int(&row, "batch", at)? != batch.number {
                return Ok(None);
            }
            let first_seq = int(&row, "first_seq", at)?;
            let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
            let rows = audit_page(
                &mut **tx,
                first_seq.saturating_sub(1),
                first_seq.saturating_add(n - 1),
                n,
            )
            .await?;
            $crate::ops::same_batch(first_seq, &rows, events).map(Some)
        }

        /// Takes the pool, or a transaction's connection.
        pub(crate) async fn audit_head<'e>(
            ex: impl sqlx::Executor<'e, Database = Db>,
        ) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
            let Some(row) = sqlx::query(sql::AUDIT_HEAD)
                .fetch_optional(ex)
                .await
                .map_err(db)?
            else {
                return Ok(None);
            };
            let at = At::table("audit_records");
            let seq = int(&row, "seq", at)?;
            Ok(Some((seq, blob(&row, "hash", at.seq(seq))?)))
        }

        /// Takes the pool, or a transaction's connection.
        pub(crate) async fn audit_page<'e>(
            ex: impl sqlx::Executor<'e, Database = Db>,
            after: i64,
            upto: i64,
            limit: i64,
        ) -> Result<Vec<AuditRow>, StoreError> {
            let rows = sqlx::query(sql::AUDIT_PAGE)
                .bind(after)
                .bind(upto)
                .bind(limit)
                .fetch_all(ex)
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
            let seq = c.seq;
            let what = move || format!("audit checkpoint seq {seq}");
            let inserted = sqlx::query(sql::PUT_CHECKPOINT)
                .bind(c.seq)
                .bind(&c.hash)
                .bind(&c.signature)
                .bind(&c.public_key)
                .bind(c.ts_ms)
                .execute(pool)
                .await
                .map_err(|e| err(e, what))?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            // The same checkpoint again is a retry whose first attempt landed (its `ts_ms` is when
            // it was signed, not part of what is signed); anything else at this seq is a conflict.
            let stored = sqlx::query(sql::CHECKPOINT_AT)
                .bind(c.seq)
                .fetch_optional(pool)
                .await
                .map_err(db)?;
            match stored.as_ref().map(checkpoint_row).transpose()? {
                Some(s) if (&s.hash, &s.signature, &s.public_key) == (&c.hash, &c.signature, &c.public_key) => Ok(()),
                _ => Err(StoreError::AlreadyExists { what: what() }),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_chain_onto_the_head_and_refuse_a_damaged_one() {
        let events = [(1, b"a".to_vec()), (2, b"b".to_vec())];
        let l = links(None, None, &events).unwrap();
        assert_eq!((l[0].seq, l[0].prev, l[1].seq, l[1].prev), (1, GENESIS, 2, l[0].hash));
        assert_eq!(l[1].hash, chain_hash(&chain_hash(&GENESIS, 1, b"a"), 2, b"b"));
        let on = links(Some((2, l[1].hash.to_vec())), None, &events[..1]).unwrap();
        assert_eq!((on[0].seq, on[0].prev), (3, l[1].hash));

        // The writer's own last record wins while the head has not moved past it (an edited head,
        // a truncated log); once another writer appended, the stored head is the one to extend.
        let own = Some((2, [7; 32]));
        for head in [Some((2, vec![9; 32])), Some((1, vec![9; 32])), None] {
            let on = links(head, own, &events[..1]).unwrap();
            assert_eq!((on[0].seq, on[0].prev), (3, [7; 32]));
        }
        let on = links(Some((5, vec![9; 32])), own, &events[..1]).unwrap();
        assert_eq!((on[0].seq, on[0].prev), (6, [9; 32]));

        for (head, problem) in [
            ((-1, vec![0; 32]), "negative"),
            ((5, vec![0; 31]), "32 bytes"),
            ((i64::MAX, vec![0; 32]), "maximum"),
        ] {
            match links(Some(head), None, &events) {
                Err(StoreError::Corrupt { what, .. }) => assert!(what.contains(problem), "{what}"),
                _ => panic!("expected Corrupt for {problem}"),
            }
        }
    }
}
