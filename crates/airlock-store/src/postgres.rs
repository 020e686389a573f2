//! The PostgreSQL backend (scale-out: every replica opens the same database): connecting,
//! migrating safely when several replicas start at once, and the shared operations of
//! [`crate::ops`] run over PostgreSQL.
//!
//! A URL may carry a password. Errors name the server as `postgres://user@host:port/db`
//! ([`target`]) and have the password scrubbed from the driver's text.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long opening the store waits for the server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long taking a connection from the pool may wait (sqlx's default is 30 s): see [`bounded`].
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// True for the URLs this backend opens.
pub(crate) fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// SQLSTATEs worth retrying: connection failures (08…), serialization failures and deadlocks,
/// insufficient resources (53…: disk full, too many connections), the server shutting down or
/// starting (57P01–57P03), and a lock not available in time.
fn transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "55P03")
}

fn err(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    StoreError::from_sqlx(e, transient, what)
}

fn db(e: sqlx::Error) -> StoreError {
    err(e, || "row".to_owned())
}

/// The server and database a URL names, without its password: what errors may show.
pub(crate) fn target(opts: &PgConnectOptions) -> String {
    let database = opts.get_database().unwrap_or(opts.get_username());
    match opts.get_socket() {
        Some(dir) => format!("postgres://{}@{}/{database}", opts.get_username(), dir.display()),
        None => format!(
            "postgres://{}@{}:{}/{database}",
            opts.get_username(),
            opts.get_host(),
            opts.get_port()
        ),
    }
}

/// [`target`] of `url`, or just its scheme when it does not parse.
pub(crate) fn redacted(url: &str) -> String {
    options(url).map_or_else(|_| "postgres://…".to_owned(), |o| target(&o))
}

/// The password written in `url`'s authority (`scheme://user:password@host`), if any.
fn password_in(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p).filter(|p| !p.is_empty())
}

/// The driver's message with the URL's password (raw and percent-decoded) blanked out.
fn scrubbed(url: &str, message: String) -> String {
    let Some(password) = password_in(url) else {
        return message;
    };
    let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
    message.replace(password, "***").replace(decoded.as_ref(), "***")
}

fn connect_error(url: &str, target: String, reason: String) -> StoreError {
    StoreError::Connect {
        target,
        reason: scrubbed(url, reason),
    }
}

/// Parses `url`; a malformed one is [`StoreError::BadUrl`] without the URL's text.
fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
        reason: scrubbed(url, e.to_string()),
    })
}

/// Connects to the database `url` names and brings its schema up to date.
///
/// The migrations run on a connection of their own that is closed afterwards: sqlx's migrator
/// holds a PostgreSQL advisory lock while it works, so replicas starting together apply the
/// schema once, one after the other, and closing the session releases the lock even when a
/// migration failed (a pooled connection would keep it and block every other replica).
pub(crate) async fn open(url: &str) -> Result<PgPool, StoreError> {
    let opts = options(url)?;
    let target = target(&opts);
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(connect_error(url, target, e.to_string())),
        Err(_) => {
            let reason = format!("no answer within {} s", CONNECT_TIMEOUT.as_secs());
            return Err(connect_error(url, target, reason));
        }
    };
    // `run_direct`, not `run`: `run(&mut conn)` is not `Send` (its `Acquire` bound is not general
    // over lifetimes), and callers spawn `open`.
    let migrated = MIGRATOR.run_direct(&mut conn).await;
    let _ = conn.close().await;
    migrated.map_err(StoreError::Migrate)?;
    Ok(PgPoolOptions::new()
        .acquire_timeout(DEFAULT_ACQUIRE_TIMEOUT)
        .connect_lazy_with(opts))
}

/// The same database with a new pool whose connections are acquired within `timeout` (the
/// pool checks a connection before handing it out, so a server that stopped answering fails
/// here, not minutes later). Lazy: nothing is connected yet.
pub(crate) fn bounded(pool: &PgPool, timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .acquire_timeout(timeout)
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// [`open`], for `airlock init`: refuses a database that already holds an airlock store (a
/// new master key and audit key would orphan what is there).
pub(crate) async fn create(url: &str) -> Result<PgPool, StoreError> {
    let pool = open(url).await?;
    let held: Result<bool, StoreError> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM meta) OR EXISTS (SELECT 1 FROM secrets) \
         OR EXISTS (SELECT 1 FROM agents) OR EXISTS (SELECT 1 FROM audit_records)",
    )
    .fetch_one(&pool)
    .await
    .map_err(db);
    match held {
        Ok(false) => Ok(pool),
        Ok(true) => {
            pool.close().await;
            Err(StoreError::AlreadyExists {
                what: format!("an airlock store in {}", redacted(url)),
            })
        }
        Err(e) => {
            pool.close().await;
            Err(e)
        }
    }
}

/// Serializes audit appenders across every replica. The advisory lock's key is a constant
/// (`0x6169726c6f636b01`, "airlock" and 1); advisory locks are per database, so each airlock
/// database has its own. The lock is the transaction's: commit or rollback releases it. A wait
/// longer than `lock_timeout` fails (55P03, transient: the writer refuses events and retries);
/// `idle_in_transaction_session_timeout` ends a holder that stalls mid-batch (a replica frozen or
/// cut off), which would otherwise block every appender until the server noticed the dead socket.
const APPEND_LOCK: &str = "SET LOCAL lock_timeout = '5s'; SET LOCAL idle_in_transaction_session_timeout = '10s'; \
     SELECT pg_advisory_xact_lock(7019267304284449537)";

/// A transaction holding [`APPEND_LOCK`], for `append_audit_chained`.
async fn begin_append(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    // A `&str` without arguments goes as one simple-protocol message: three statements, one round
    // trip. (`raw_sql(…).execute` would do the same, but its future is not provably `Send`.)
    sqlx::Executor::execute(&mut *tx, APPEND_LOCK).await.map_err(db)?;
    Ok(tx)
}

/// `count_vote` locks the approval's row; votes on other approvals go on in parallel.
const LOCK_ROW: &str = " FOR UPDATE";
/// Delivered to every listening replica when the transaction commits (never before, never if it
/// rolls back).
const NOTIFY: Option<&str> = Some("SELECT pg_notify('airlock', $1)");

/// A transaction for `count_vote`. A vote waits at most `lock_timeout` behind others on the same
/// approval (55P03, transient: the voter is told to try again).
async fn begin_write(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::Executor::execute(&mut *tx, "SET LOCAL lock_timeout = '5s'")
        .await
        .map_err(db)?;
    Ok(tx)
}

/// Takes the appenders' advisory lock (see [`APPEND_LOCK`]) inside a `begin_write` transaction
/// that appends audit records with what it writes. Taken after the row lock; the audit writer
/// takes no row locks, so the order cannot deadlock.
async fn lock_appenders(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<(), StoreError> {
    sqlx::Executor::execute(&mut **tx, "SELECT pg_advisory_xact_lock(7019267304284449537)")
        .await
        .map_err(db)?;
    Ok(())
}

// The operations: the shared bodies of crate::ops. PostgreSQL reports the declared column types.
crate::ops::store_ops!(sqlx::Postgres, blob = "BYTEA", int = "INT8", text = "TEXT");
crate::approvals_ops::approval_ops!();
crate::cluster_ops::cluster_ops!();
crate::rate_ops::rate_ops!();
crate::creds_ops::creds_ops!();
crate::deferred_ops::deferred_ops!();
crate::apikeys_ops::apikeys_ops!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_found_and_scrubbed() {
        let url = "postgres://admin:s3cr%40t@db.internal:5433/airlock?sslmode=require";
        assert_eq!(password_in(url), Some("s3cr%40t"));
        let msg = scrubbed(url, "auth failed for s3cr@t and s3cr%40t".into());
        assert_eq!(msg, "auth failed for *** and ***");
        assert_eq!(password_in("postgres://admin@db/airlock"), None);
        assert_eq!(password_in("postgres://db/a:b@c"), None, "a path is not userinfo");
        assert_eq!(redacted(url), "postgres://admin@db.internal:5433/airlock");
        assert_eq!(redacted("postgres://admin:s3cr3t@db:port/x"), "postgres://…");
    }
}
