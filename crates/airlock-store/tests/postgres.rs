//! What only the PostgreSQL backend does: replicas migrating one database at once, `airlock init`
//! into an existing database, and connection errors that never show the URL's password.

mod common;

use std::sync::Arc;

use airlock_store::{Store, StoreError};
use common::pg::{self, Database};
use tokio::sync::Barrier;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_opening_a_fresh_database_at_once_apply_the_schema_once() {
    const REPLICAS: usize = 8;
    let d = Database::create().await;
    let opens: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let url = d.url.clone();
            tokio::spawn(async move { Store::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(
            open.await
                .unwrap()
                .unwrap_or_else(|e| panic!("a replica failed to open: {e}")),
        );
    }
    // Every replica sees the one schema: what one writes, the others read.
    for (i, s) in stores.iter().enumerate() {
        s.set_meta(&format!("replica-{i}"), b"up").await.unwrap();
    }
    for s in &stores {
        for i in 0..REPLICAS {
            assert_eq!(s.get_meta(&format!("replica-{i}")).await.unwrap(), Some(b"up".to_vec()));
        }
    }
    let raw = sqlx::PgPool::connect(&d.url).await.unwrap();
    let applied: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&raw)
        .await
        .unwrap();
    // Every migration file's version (`NNNN_name.sql`), once each.
    let mut versions: Vec<(i64, bool)> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .map(|f| {
            let name = f.unwrap().file_name().into_string().unwrap();
            (name.split('_').next().unwrap().parse().unwrap(), true)
        })
        .collect();
    versions.sort_unstable();
    assert!(versions.len() >= 3, "{versions:?}");
    assert_eq!(applied, versions, "each migration applied exactly once");
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'audit_records'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(tables, 1);
    raw.close().await;
    for s in stores {
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_to_set_a_shared_key_all_get_the_same_value() {
    const REPLICAS: usize = 6;
    let d = Database::create().await;
    let mut stores = Vec::new();
    for _ in 0..REPLICAS {
        stores.push(Store::open(&d.url).await.unwrap());
    }
    for round in 0..20 {
        let key = format!("shared-key-{round}");
        // Released together, each with a value of its own, on its own pool (a replica's).
        let start = Arc::new(Barrier::new(REPLICAS));
        let racers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (s, key, start) = (s.clone(), key.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    s.meta_insert_or_get(&key, format!("value-of-{i}").as_bytes()).await
                })
            })
            .collect();
        let mut got = Vec::new();
        for r in racers {
            got.push(r.await.unwrap().unwrap());
        }
        assert!(got.iter().all(|v| *v == got[0]), "round {round}: {got:?}");
        assert!(String::from_utf8_lossy(&got[0]).starts_with("value-of-"));
        assert_eq!(stores[0].get_meta(&key).await.unwrap(), Some(got[0].clone()));
    }
    for s in stores {
        s.close().await;
    }
}

#[tokio::test]
async fn create_sets_up_an_empty_database_and_refuses_one_holding_a_store() {
    let d = Database::create().await;
    // A replica may have migrated the database before `airlock init` ran: still empty, fine.
    Store::open(&d.url).await.unwrap().close().await;
    let store = Store::create(&d.url).await.unwrap();
    assert_eq!(store.backend_name(), "postgres");
    store.set_meta("control_token_sha256", b"x").await.unwrap();
    store.close().await;

    let err = Store::create(&d.url).await.unwrap_err();
    match &err {
        StoreError::AlreadyExists { what } => assert!(what.contains(&d.name), "{what}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let store = Store::open(&d.url).await.unwrap();
    assert_eq!(
        store.get_meta("control_token_sha256").await.unwrap(),
        Some(b"x".to_vec()),
        "the refused create changed nothing"
    );
}

/// The error must name where it tried to connect, and must never echo the password.
fn assert_connect_error(err: StoreError, password: &str, names: &[&str]) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(password), "the password leaked: {text}");
    assert!(matches!(err, StoreError::Connect { .. }), "{text}");
    for n in names {
        assert!(text.contains(n), "{text} should name {n}");
    }
}

#[tokio::test]
async fn connection_errors_name_host_and_database_but_never_the_password() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://airlock:Hunter2-secret@127.0.0.1:{port}/airlock_prod");
    let err = Store::open(&url).await.unwrap_err();
    assert_connect_error(err, "Hunter2-secret", &[&format!("127.0.0.1:{port}"), "airlock_prod"]);

    // The real server, a wrong password.
    let d = Database::create().await;
    let wrong = d.url.replacen(":airlock@", ":Wr0ng-pa55word@", 1);
    assert_ne!(wrong, d.url, "the test URL carries the password `airlock`");
    let err = Store::open(&wrong).await.unwrap_err();
    assert_connect_error(err, "Wr0ng-pa55word", &["127.0.0.1:5432", &d.name, "password"]);

    // The right password, a database that does not exist.
    let missing = pg::with_database(&d.url, "airlock_no_such_db");
    let err = Store::open(&missing).await.unwrap_err();
    assert_connect_error(err, ":airlock@", &["airlock_no_such_db"]);

    // A URL that does not parse.
    let err = Store::open("postgres://airlock:Hunter2-secret@db.internal:port/airlock")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::BadUrl { .. }), "{text}");
    assert!(!text.contains("Hunter2-secret"), "{text}");
}

#[tokio::test]
async fn tls_is_negotiated_and_server_certificates_are_verified() {
    let d = Database::create().await;
    let sep = if d.url.contains('?') { '&' } else { '?' };
    // The test server has TLS on with a self-signed certificate (Debian's snakeoil).
    let store = Store::open(&format!("{}{sep}sslmode=require", d.url)).await.unwrap();
    let raw = sqlx::PgPool::connect(&format!("{}{sep}sslmode=require", d.url))
        .await
        .unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert!(ssl, "sslmode=require must give an encrypted connection");
    store.close().await;
    // verify-full checks the chain: a self-signed certificate is refused, with a clear error.
    let err = Store::open(&format!("{}{sep}sslmode=verify-full", d.url))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
}
