//! The SQLite backend (the embedded default): connection settings, file creation and the
//! migrator. The operations are the shared ones of [`crate::ops`], run over SQLite.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's extended result codes carry the primary code in the low byte:
/// BUSY (5), LOCKED (6), IOERR (10), FULL (13), CANTOPEN (14) are worth retrying.
fn transient(code: &str) -> bool {
    code.parse::<i64>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14))
}

fn err(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    StoreError::from_sqlx(e, transient, what)
}

fn db(e: sqlx::Error) -> StoreError {
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

/// A transaction holding the database's write lock, for `append_audit_chained`: `BEGIN IMMEDIATE`
/// takes it at once (waiting up to the busy timeout), so the head is read and extended under it.
/// A deferred `BEGIN` would read first, and its later upgrade to writing fails outright (without
/// waiting) if another connection wrote in between.
async fn begin_append(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
}

/// `BEGIN IMMEDIATE` already holds the database's write lock: no row lock to ask for.
const LOCK_ROW: &str = "";
/// One gateway owns a SQLite database: there is nobody to notify.
const NOTIFY: Option<&str> = None;

/// A transaction for `count_vote`, holding the write lock from its start (see `begin_append`).
async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    begin_append(pool).await
}

/// The write lock `begin_write` took already serializes audit appenders too.
async fn lock_appenders(_tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>) -> Result<(), StoreError> {
    Ok(())
}

// The operations: the shared bodies of crate::ops. SQLite reports each value's own storage class.
crate::ops::store_ops!(sqlx::Sqlite, blob = "BLOB", int = "INTEGER", text = "TEXT");
crate::approvals_ops::approval_ops!();
crate::cluster_ops::cluster_ops!();
crate::rate_ops::rate_ops!();
crate::creds_ops::creds_ops!();
crate::deferred_ops::deferred_ops!();
crate::apikeys_ops::apikeys_ops!();
