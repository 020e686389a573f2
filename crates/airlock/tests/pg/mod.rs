//! The PostgreSQL gateway's test helpers: a fresh database on the real server, `airlock serve`
//! with the database listener, and real clients (`psql`, tokio-postgres, psycopg) through it.
#![allow(dead_code)]

use std::process::Stdio;

use crate::support::*;

/// The "real" password airlock holds (scripts/postgres-for-tests.sh creates the role).
pub const REAL: &str = "gw-real-Pa55-7c1e9a";
pub const DIRECT: &str = "postgres://airlock_gw:gw-real-Pa55-7c1e9a@127.0.0.1:5432";

/// A fresh database with table `t` (one row) and an empty table `big` (for COPY), made directly
/// with the real password.
pub async fn database() -> String {
    let name = format!(
        "airlock_gw_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let admin = direct("postgres").await;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let db = direct(&name).await;
    db.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1); CREATE TABLE big (id int, payload text)")
        .await
        .unwrap();
    name
}

pub async fn direct(db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&format!("{DIRECT}/{db}"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

pub async fn table_exists(db: &str) -> bool {
    let c = direct(db).await;
    let row = c
        .query_one("SELECT to_regclass('public.t') IS NOT NULL", &[])
        .await
        .unwrap();
    row.get(0)
}

pub fn config(db: &str) -> String {
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
control = "127.0.0.1:0"
postgres_listen = "127.0.0.1:0"
data_dir = "./airlock-data"
allow_private = ["127.0.0.1:5432"]

[databases.app]
kind = "postgres"
upstream = "127.0.0.1:5432"
database = "{db}"
user = "airlock_gw"
password = "vault:app-db"
tls = "require"
placeholder = "airlock-db-app"

[[agents]]
name = "analyst"
databases = ["app"]

[[agents]]
name = "intruder"

[[agents]]
name = "loader"
databases = ["app"]

[people.alice]
roles = ["senior-engineer"]

[[rules]]
name = "reads are fine"
databases = ["app"]
sql = ["read"]
action = "allow"

[[rules]]
name = "schema changes need a senior engineer"
databases = ["app"]
sql = ["ddl"]
action = "approve"
approvers = ["senior-engineer"]

[[rules]]
name = "loading is fine"
databases = ["app"]
agents = ["loader"]
sql = ["copy", "read", "write", "other"]
action = "allow"

[[rules]]
name = "no writes"
databases = ["app"]
agents = ["analyst"]
sql = ["write"]
action = "deny"
reason = "agents do not change data"
"#
    )
}

/// Serves `config`, with the real password sealed and tokens for both agents.
pub fn start(db: &str) -> (Gateway, String, String) {
    start_with(&config(db))
}

/// [`start`] with a config of the test's own (agents analyst, intruder and loader declared).
pub fn start_with(config: &str) -> (Gateway, String, String) {
    let (dir, cfg) = setup(config);
    let o = airlock(&cfg, &["secret", "set", "app-db"], Some(REAL.as_bytes()), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let mut tokens = Vec::new();
    let mut urls = Vec::new();
    for a in ["analyst", "intruder", "loader"] {
        let o = airlock(&cfg, &["agent", "add", a], None, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
        // http://NAME:TOKEN@HOST:PORT
        let creds = url
            .trim_start_matches("http://")
            .rsplit_once('@')
            .unwrap()
            .0
            .to_string();
        tokens.push(creds.split_once(':').unwrap().1.to_string());
        urls.push((a.to_string(), url));
    }
    let gw = Gateway::serving(dir, cfg, urls);
    assert!(gw.databases.is_some(), "no database listener: {}", gw.logs());
    (gw, tokens[0].clone(), tokens[1].clone())
}

/// Runs `psql -c sql` through the gateway as `user` with `password`; (success, output).
pub async fn psql(gw: &Gateway, user: &str, password: &str, sql: &str) -> (bool, String) {
    let o = psql_command(gw, user, password, &["-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .await
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), out)
}

/// `psql -X -v VERBOSITY=verbose -tA ARGS` to the gateway as `user` with `password`, over TLS
/// verified with airlock's CA (`sslmode=verify-full`), stdin closed.
pub fn psql_command(gw: &Gateway, user: &str, password: &str, args: &[&str]) -> tokio::process::Command {
    let addr = gw.databases.unwrap();
    let mut c = tokio::process::Command::new("psql");
    c.args(["-X", "-v", "VERBOSITY=verbose", "-tA"])
        .args(args)
        .env("PGHOST", addr.ip().to_string())
        .env("PGPORT", addr.port().to_string())
        .env("PGUSER", user)
        .env("PGDATABASE", "app")
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", gw.ca_path())
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null());
    c
}

/// TLS for tokio-postgres toward the gateway, verifying the listener's leaf with airlock's CA.
pub fn client_tls(gw: &Gateway) -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    for c in airlock_tls::load_pem_certs(&gw.ca_pem()).unwrap() {
        roots.add(c).unwrap();
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(tls)
}

/// tokio-postgres through the gateway as the analyst, over TLS.
pub async fn rust_client(gw: &Gateway, token: &str) -> tokio_postgres::Client {
    rust_client_as(gw, "analyst", token).await
}

/// The token in `agent`'s proxy URL (http://NAME:TOKEN@HOST:PORT).
pub fn token_of(gw: &Gateway, agent: &str) -> String {
    let url = gw.url(agent);
    let creds = url.trim_start_matches("http://").rsplit_once('@').unwrap().0;
    creds.split_once(':').unwrap().1.to_string()
}

/// tokio-postgres through the gateway as `agent`, over TLS.
pub async fn rust_client_as(gw: &Gateway, agent: &str, token: &str) -> tokio_postgres::Client {
    let addr = gw.databases.unwrap();
    let url = format!(
        "host={} port={} user={agent} password={token} dbname=app sslmode=require",
        addr.ip(),
        addr.port()
    );
    let (client, conn) = tokio_postgres::connect(&url, client_tls(gw)).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Waits until the server's backend `pid` (or, without one, a backend on database `db`) waits
/// on `event` (pg_stat_activity's wait_event). Polled: the server announces no such event.
pub async fn waiting(db: &str, pid: Option<i32>, event: &str) {
    let c = direct(db).await;
    let sql = "SELECT count(*) FROM pg_stat_activity \
               WHERE ($1::int IS NULL OR pid = $1) AND datname = current_database() AND wait_event = $2";
    for _ in 0..3000 {
        if c.query_one(sql, &[&pid, &event]).await.unwrap().get::<_, i64>(0) == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("backend {pid:?} never waited on {event}");
}

pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Runs a psycopg `script` with arguments: the gateway's host and port, the agent's token,
/// airlock's CA and a direct URL of database `db` (for watching the server's side).
pub async fn psycopg(gw: &Gateway, token: &str, script: &'static str, db: &str) -> (bool, String) {
    psycopg_with(gw, token, script, db, &[]).await
}

/// [`psycopg`] with more arguments after those.
pub async fn psycopg_with(gw: &Gateway, token: &str, script: &'static str, db: &str, more: &[&str]) -> (bool, String) {
    let addr = gw.databases.unwrap();
    let mut args = vec![
        addr.ip().to_string(),
        addr.port().to_string(),
        token.to_string(),
        gw.ca_path().to_string_lossy().to_string(),
        format!("{DIRECT}/{db}"),
    ];
    args.extend(more.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || python(script, &args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}
