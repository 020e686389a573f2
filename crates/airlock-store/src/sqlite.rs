//! The SQLite backend: connection settings, strict row decoding, and the operations behind
//! [`Store`](crate::Store). SQL text lives in [`crate::sql`] and is shared with other backends.
//!
//! SQLite columns are dynamically typed, so a row read back is checked value by value: a BLOB
//! column holding TEXT, or a NULL, is reported as [`StoreError::Corrupt`] naming the row.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, TypeInfo, ValueRef};

use crate::error::StoreError;
use crate::{AgentRow, AuditRow, CheckpointRow, SecretRow, sql};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's extended result codes carry the primary code in the low byte:
/// BUSY (5), LOCKED (6), IOERR (10), FULL (13), CANTOPEN (14) are worth retrying.
fn transient(code: &str) -> bool {
    code.parse::<i64>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14))
}

pub(crate) fn err(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    StoreError::from_sqlx(e, transient, what)
}

pub(crate) fn db(e: sqlx::Error) -> StoreError {
    err(e, || "row".to_owned())
}

/// The settings every file database gets. Never `create_if_missing`: only `create` makes files.
fn tune(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .create_if_missing(false)
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(StoreError::Migrate)
}

/// Opens an existing database file and brings its schema up to date.
pub(crate) async fn open_file(opts: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let path = opts.get_filename().to_path_buf();
    match path.try_exists() {
        Ok(true) => {}
        Ok(false) => return Err(StoreError::DatabaseMissing { path }),
        Err(source) => return Err(StoreError::Io { path, source }),
    }
    let pool = SqlitePoolOptions::new().connect_with(tune(opts)).await.map_err(db)?;
    if let Err(e) = migrate(&pool).await {
        pool.close().await;
        return Err(e);
    }
    Ok(pool)
}

/// Parses `sqlite://…` / `sqlite:…` URLs; a plain path is taken as a file name.
pub(crate) fn options_for(url_or_path: &str) -> Result<SqliteConnectOptions, StoreError> {
    if url_or_path.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url_or_path).map_err(db)
    } else {
        Ok(SqliteConnectOptions::new().filename(url_or_path))
    }
}

/// True for the URLs that name a private in-memory database.
pub(crate) fn is_memory_url(url: &str) -> bool {
    matches!(url, ":memory:" | "sqlite::memory:" | "sqlite://:memory:")
}

/// Creates a new database file (refusing an existing one) and applies the schema.
/// The file is created owner-read/write only; SQLite gives its -wal/-shm files the same mode.
pub(crate) async fn create_file(path: &Path) -> Result<SqlitePool, StoreError> {
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    match file.open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(StoreError::AlreadyExists {
                what: format!("database {}", path.display()),
            });
        }
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    // An empty file is a valid, empty SQLite database.
    match open_file(SqliteConnectOptions::new().filename(path)).await {
        Ok(pool) => Ok(pool),
        Err(e) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
            Err(e)
        }
    }
}

/// A private in-memory database on one connection that is never recycled, so it persists
/// for the pool's lifetime.
pub(crate) async fn open_memory() -> Result<SqlitePool, StoreError> {
    let opts = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(db)?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await
        .map_err(db)?;
    migrate(&pool).await?;
    Ok(pool)
}

// ---------------------------------------------------------------------------------------------
// Strict decoding

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
    fn seq(self, seq: i64) -> Self {
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

/// Checks the value's runtime storage class before decoding it.
fn checked<'r, T>(row: &'r SqliteRow, col: &str, want: &str, at: At<'_>) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
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

pub(crate) fn blob(row: &SqliteRow, col: &str, at: At<'_>) -> Result<Vec<u8>, StoreError> {
    checked::<Vec<u8>>(row, col, "BLOB", at)
}

pub(crate) fn int(row: &SqliteRow, col: &str, at: At<'_>) -> Result<i64, StoreError> {
    checked::<i64>(row, col, "INTEGER", at)
}

pub(crate) fn text(row: &SqliteRow, col: &str, at: At<'_>) -> Result<String, StoreError> {
    checked::<String>(row, col, "TEXT", at)
}

fn agent_row(row: &SqliteRow) -> Result<AgentRow, StoreError> {
    let at = At::table("agents");
    let name = text(row, "name", at)?;
    let at = at.key(&name);
    Ok(AgentRow {
        token_hash: blob(row, "token_hash", at)?,
        created_ms: int(row, "created_ms", at)?,
        name,
    })
}

fn secret_row(row: &SqliteRow) -> Result<SecretRow, StoreError> {
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

fn audit_row(row: &SqliteRow) -> Result<AuditRow, StoreError> {
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

fn checkpoint_row(row: &SqliteRow) -> Result<CheckpointRow, StoreError> {
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

// ---------------------------------------------------------------------------------------------
// Operations

pub(crate) async fn get_meta(pool: &SqlitePool, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let row = sqlx::query(sql::GET_META)
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.map(|r| blob(&r, "value", At::table("meta").key(key))).transpose()
}

pub(crate) async fn set_meta(pool: &SqlitePool, key: &str, value: &[u8]) -> Result<(), StoreError> {
    sqlx::query(sql::SET_META)
        .bind(key)
        .bind(value)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn add_agent(pool: &SqlitePool, a: &AgentRow) -> Result<(), StoreError> {
    sqlx::query(sql::ADD_AGENT)
        .bind(&a.name)
        .bind(&a.token_hash)
        .bind(a.created_ms)
        .execute(pool)
        .await
        .map_err(|e| err(e, || format!("agent {:?}", a.name)))?;
    Ok(())
}

pub(crate) async fn list_agents(pool: &SqlitePool) -> Result<Vec<AgentRow>, StoreError> {
    let rows = sqlx::query(sql::LIST_AGENTS).fetch_all(pool).await.map_err(db)?;
    rows.iter().map(agent_row).collect()
}

pub(crate) async fn remove_agent(pool: &SqlitePool, name: &str) -> Result<bool, StoreError> {
    let r = sqlx::query(sql::REMOVE_AGENT)
        .bind(name)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn put_secret(pool: &SqlitePool, s: &SecretRow) -> Result<(), StoreError> {
    bind_secret(sqlx::query(sql::PUT_SECRET), s)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

fn bind_secret<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    s: &'q SecretRow,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    q.bind(&s.name)
        .bind(s.version)
        .bind(&s.key_id)
        .bind(&s.nonce)
        .bind(&s.ciphertext)
        .bind(s.updated_ms)
}

pub(crate) async fn get_secret(pool: &SqlitePool, name: &str) -> Result<Option<SecretRow>, StoreError> {
    let row = sqlx::query(sql::GET_SECRET)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(secret_row).transpose()
}

pub(crate) async fn list_secrets(pool: &SqlitePool) -> Result<Vec<SecretRow>, StoreError> {
    let rows = sqlx::query(sql::LIST_SECRETS).fetch_all(pool).await.map_err(db)?;
    rows.iter().map(secret_row).collect()
}

pub(crate) async fn remove_secret(pool: &SqlitePool, name: &str) -> Result<bool, StoreError> {
    let r = sqlx::query(sql::REMOVE_SECRET)
        .bind(name)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn replace_secrets_atomically(pool: &SqlitePool, rows: &[SecretRow]) -> Result<(), StoreError> {
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

pub(crate) async fn append_audit(pool: &SqlitePool, rows: &[AuditRow]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    // One multi-row INSERT per chunk: every statement is a round trip to sqlx's SQLite
    // worker thread, and under load that hand-off costs more than the insert itself.
    for chunk in rows.chunks(sql::APPEND_AUDIT_CHUNK) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(sql::APPEND_AUDIT_MANY);
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.seq)
                .push_bind(r.ts_ms)
                .push_bind(&r.prev_hash)
                .push_bind(&r.hash)
                .push_bind(&r.body);
        });
        if let Err(batch_err) = q.build().execute(&mut *tx).await {
            // A failed statement is undone on its own; replay the chunk row by row so the
            // error names the offending record. The transaction is rolled back either way.
            for r in chunk {
                sqlx::query(sql::APPEND_AUDIT)
                    .bind(r.seq)
                    .bind(r.ts_ms)
                    .bind(&r.prev_hash)
                    .bind(&r.hash)
                    .bind(&r.body)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| err(e, || format!("audit record seq {}", r.seq)))?;
            }
            return Err(db(batch_err));
        }
    }
    tx.commit().await.map_err(db)
}

pub(crate) async fn audit_head(pool: &SqlitePool) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    let Some(row) = sqlx::query(sql::AUDIT_HEAD).fetch_optional(pool).await.map_err(db)? else {
        return Ok(None);
    };
    let at = At::table("audit_records");
    let seq = int(&row, "seq", at)?;
    Ok(Some((seq, blob(&row, "hash", at.seq(seq))?)))
}

pub(crate) async fn audit_page(
    pool: &SqlitePool,
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

pub(crate) async fn audit_tail(pool: &SqlitePool, n: i64) -> Result<Vec<AuditRow>, StoreError> {
    let rows = sqlx::query(sql::AUDIT_TAIL).bind(n).fetch_all(pool).await.map_err(db)?;
    rows.iter().map(audit_row).collect()
}

pub(crate) async fn put_checkpoint(pool: &SqlitePool, c: &CheckpointRow) -> Result<(), StoreError> {
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

pub(crate) async fn checkpoints(pool: &SqlitePool) -> Result<Vec<CheckpointRow>, StoreError> {
    let rows = sqlx::query(sql::CHECKPOINTS).fetch_all(pool).await.map_err(db)?;
    rows.iter().map(checkpoint_row).collect()
}

pub(crate) async fn last_checkpoint(pool: &SqlitePool) -> Result<Option<CheckpointRow>, StoreError> {
    let row = sqlx::query(sql::LAST_CHECKPOINT)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(checkpoint_row).transpose()
}
