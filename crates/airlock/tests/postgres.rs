//! The binary on a PostgreSQL store (a real server, a database per test): `airlock init` creates
//! the schema there, every command and `serve` use it through `[store] url` or
//! `AIRLOCK_STORE_URL`, and data_dir keeps only the CA, master key and control token.
mod support;

use sqlx::Connection;
use support::replicas::{init, pg};
use support::*;

const REAL: &str = "real-key-0123456789-abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_serve_and_audit_run_on_postgres() {
    let db = pg::Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    let o = init(dir.path(), &db.url);
    assert!(o.status.success(), "{}", text(&o));
    let shown = text(&o);
    let target = format!("PostgreSQL database postgres://airlock@127.0.0.1:5432/{}", db.name);
    assert!(shown.contains(&target), "{shown}");
    assert!(!shown.contains(":airlock@"), "the password was printed: {shown}");
    let data = dir.path().join("airlock-data");
    for f in ["ca.pem", "ca-key.pem", "master.key", "control.token"] {
        assert!(data.join(f).exists(), "{f}");
    }
    assert!(
        !data.join("airlock.db").exists(),
        "no SQLite file next to a PostgreSQL store"
    );

    // A second init against the same database is refused before it writes anything.
    let other = tempfile::tempdir().unwrap();
    let o = init(other.path(), &db.url);
    assert!(
        !o.status.success() && text(&o).contains("already exists"),
        "{}",
        text(&o)
    );
    assert!(!other.path().join("airlock.toml").exists());

    // From here on the store comes from the file: `[store] url`, no variable.
    let up = upstream(true).await;
    let mut gw = serve_one_secret_on(dir, &db.url, &up, REAL);
    gw.assert_injects(&up, REAL).await;
    gw.stop();
    assert!(gw.logs().contains("postgres"), "serve names its store: {}", gw.logs());
    assert!(!gw.logs().contains(":airlock@"), "serve logged the password");
    assert!(!gw.audit().is_empty(), "the audit log is read back from PostgreSQL");
    let o = gw.cli(&["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));

    // The rows are in PostgreSQL, sealed.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM secrets WHERE name = 'k'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!sealed.windows(REAL.len()).any(|w| w == REAL.as_bytes()));
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_records")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(records > 0);
    assert!(!gw.dir.path().join("airlock-data/airlock.db").exists());
}

#[test]
fn init_with_a_store_it_cannot_reach_writes_nothing_and_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = pg::with_database(&pg::server_url(), "airlock_init_target").replacen(":airlock@", ":Wr0ng-pa55@", 1);
    let o = init(dir.path(), &url);
    let shown = text(&o);
    assert!(!o.status.success(), "{shown}");
    assert!(
        shown.contains("127.0.0.1:5432/airlock_init_target") && !shown.contains("Wr0ng-pa55"),
        "{shown}"
    );
    assert!(!dir.path().join("airlock.toml").exists());
    assert!(!dir.path().join("airlock-data/master.key").exists());
}

#[test]
fn a_store_url_that_is_empty_or_not_postgres_is_refused_not_ignored() {
    let (_dir, config) = setup("");
    for (value, needle) in [
        ("", "AIRLOCK_STORE_URL: must not be empty"),
        ("mysql://root:hunter2@db/airlock", "unsupported scheme \"mysql\""),
    ] {
        let o = airlock(&config, &["secret", "list"], None, &[(STORE_URL_ENV, value)]);
        let shown = text(&o);
        assert!(!o.status.success() && shown.contains(needle), "{value:?}: {shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
