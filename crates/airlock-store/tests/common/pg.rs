//! One PostgreSQL database per test, on the server `AIRLOCK_TEST_POSTGRES_URL` names.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

/// What `scripts/postgres-for-tests.sh` sets up.
pub const DEFAULT_URL: &str = "postgres://airlock:airlock@127.0.0.1:5432/postgres";
const PREFIX: &str = "airlock_test_";

/// The server's URL: a role that may CREATE DATABASE; its database is only used to create
/// and drop the tests' own.
pub fn server_url() -> String {
    std::env::var("AIRLOCK_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .expect("AIRLOCK_TEST_POSTGRES_URL must be a postgres:// URL");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{query}")
}

/// A connection to the server's maintenance database; panics with how to start one.
pub async fn admin() -> PgConnection {
    let url = server_url();
    match PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is not reachable for the store tests ({e}).\n\
             Start it with `bash scripts/postgres-for-tests.sh` (as root), or set AIRLOCK_TEST_POSTGRES_URL \
             to a server where the role may CREATE DATABASE."
        ),
    }
}

/// A database that exists until this value is dropped.
pub struct Database {
    pub name: String,
    pub url: String,
}

impl Database {
    pub async fn create() -> Database {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut admin = admin().await;
        drop_leftovers(&mut admin).await;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{PREFIX}{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e} (the role needs CREATEDB)"));
        let _ = admin.close().await;
        Database {
            url: with_database(&server_url(), &name),
            name,
        }
    }
}

impl Drop for Database {
    /// Drop cannot await, and the test's runtime may be the one unwinding: a thread of its own.
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&server_url()).await?;
                // FORCE ends the connections the test's store still holds.
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: test database {} was not dropped: {dropped:?}", self.name);
        }
    }
}

/// Drops test databases left by processes that no longer run (killed before their drop ran).
/// Once per process; names carry the creating process's id.
async fn drop_leftovers(admin: &mut PgConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
        for name in names {
            let pid = name
                .strip_prefix(PREFIX)
                .and_then(|n| n.split('_').next())
                .unwrap_or("");
            if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
                let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut *admin)
                    .await;
            }
        }
    })
    .await;
}
