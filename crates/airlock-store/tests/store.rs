//! The `Store` interface against real SQLite files and a real PostgreSQL server: the shared
//! tests run once per backend (`sqlite::…`, `postgres::…`), then SQLite's own file handling.

mod common;

use airlock_core::audit::{GENESIS, chain_hash};
use airlock_store::{AgentRow, Batch, Chained, CheckpointRow, SecretRow, Store, StoreError, verify_chain};
use common::{Backend, KEY, event, events, new_db, on_both_backends, verify_sig};

on_both_backends! {
    #[tokio::test] data_persists_across_reopen,
    #[tokio::test] meta_get_set_overwrite,
    #[tokio::test] meta_insert_or_get_keeps_the_first_value,
    #[tokio::test] agents_crud,
    #[tokio::test] secrets_crud,
    #[tokio::test] replace_secrets_atomically_is_all_or_nothing,
    #[tokio::test] audit_append_head_page_tail,
    #[tokio::test] a_retried_batch_lands_once,
    #[tokio::test] checkpoints_crud,
    #[tokio::test] audit_rows_cannot_be_updated_or_deleted_through_sql,
    #[tokio::test] corrupted_rows_are_reported_not_panicked,
}

fn agent(name: &str) -> AgentRow {
    AgentRow {
        name: name.into(),
        token_hash: vec![1, 2, 3],
        created_ms: 42,
    }
}

fn secret(name: &str, version: i64, key_id: &str) -> SecretRow {
    SecretRow {
        name: name.into(),
        version,
        key_id: key_id.into(),
        nonce: vec![9; 12],
        ciphertext: format!("sealed-{name}-{version}").into_bytes(),
        updated_ms: 1000 + version,
    }
}

fn batch(writer: u8, number: i64) -> Batch {
    Batch {
        writer: [writer; 16],
        number,
        after: None,
    }
}

#[tokio::test]
async fn create_refuses_an_existing_file() {
    let (db, _store) = new_db(Backend::Sqlite).await;
    let err = Store::create_sqlite(&db.path).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");

    let other = db.dir.path().join("not-a-db.txt");
    std::fs::write(&other, b"hello").unwrap();
    let err = Store::create_sqlite(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(std::fs::read(&other).unwrap(), b"hello", "existing file untouched");
}

#[tokio::test]
async fn create_in_a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::create_sqlite(&dir.path().join("nope/airlock.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn created_file_is_private_and_in_wal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (db, store) = new_db(Backend::Sqlite).await;
    let mode = std::fs::metadata(&db.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    store.set_meta("k", b"v").await.unwrap();
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.path.display()))
        .await
        .unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&raw).await.unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn open_missing_file_names_the_path_and_suggests_init() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    for url in [path.display().to_string(), format!("sqlite://{}", path.display())] {
        let err = Store::open(&url).await.unwrap_err();
        assert!(matches!(err, StoreError::DatabaseMissing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("airlock init"),
            "{msg}"
        );
    }
    assert!(!path.exists(), "open must never create the database");
}

#[tokio::test]
async fn open_refuses_unknown_schemes_without_echoing_credentials() {
    for url in [
        "mysql://admin:hunter2@db.internal/airlock",
        "file://admin:hunter2@x/airlock.db",
    ] {
        let err = Store::open(url).await.unwrap_err();
        let scheme = url.split_once("://").unwrap().0;
        assert!(
            matches!(&err, StoreError::UnsupportedUrl { scheme: s } if s == scheme),
            "{err:?}"
        );
        assert!(!err.to_string().contains("hunter2"));
        let err = Store::create(url).await.unwrap_err();
        assert!(matches!(&err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    }
}

async fn data_persists_across_reopen(backend: Backend) {
    let (db, store) = new_db(backend).await;
    store.set_meta("schema-owner", b"airlock").await.unwrap();
    store.add_agent(&agent("claude")).await.unwrap();
    store.close().await;

    let again = db.reopen().await;
    assert_eq!(
        again.get_meta("schema-owner").await.unwrap().as_deref(),
        Some(&b"airlock"[..])
    );
    assert_eq!(again.list_agents().await.unwrap(), vec![agent("claude")]);
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(again.backend_name(), name);
}

#[tokio::test]
async fn sqlite_opens_by_path_and_url_and_creates_by_url() {
    let (db, store) = new_db(Backend::Sqlite).await;
    store.set_meta("schema-owner", b"airlock").await.unwrap();
    store.add_agent(&agent("claude")).await.unwrap();
    store.close().await;

    let by_path = Store::open(db.path.to_str().unwrap()).await.unwrap();
    assert_eq!(
        by_path.get_meta("schema-owner").await.unwrap().as_deref(),
        Some(&b"airlock"[..])
    );
    by_path.close().await;

    let by_url = Store::open(&format!("sqlite://{}", db.path.display())).await.unwrap();
    assert_eq!(by_url.list_agents().await.unwrap(), vec![agent("claude")]);
    assert_eq!(by_url.backend_name(), "sqlite");

    let other = db.dir.path().join("other.db");
    Store::create(&format!("sqlite://{}", other.display())).await.unwrap();
    let err = Store::create(&other.display().to_string()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
}

async fn meta_get_set_overwrite(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    assert_eq!(store.get_meta("k").await.unwrap(), None);
    store.set_meta("k", b"one").await.unwrap();
    store.set_meta("k", b"two").await.unwrap();
    store.set_meta("empty", b"").await.unwrap();
    assert_eq!(store.get_meta("k").await.unwrap(), Some(b"two".to_vec()));
    assert_eq!(store.get_meta("empty").await.unwrap(), Some(Vec::new()));
    // Channels forget what they no longer need (a closed card's code); the rest stays.
    store.delete_meta("k").await.unwrap();
    store.delete_meta("never-set").await.unwrap();
    assert_eq!(store.get_meta("k").await.unwrap(), None);
    assert_eq!(store.get_meta("empty").await.unwrap(), Some(Vec::new()));
}

async fn meta_insert_or_get_keeps_the_first_value(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    assert_eq!(store.meta_insert_or_get("k", b"first").await.unwrap(), b"first");
    assert_eq!(store.meta_insert_or_get("k", b"second").await.unwrap(), b"first");
    assert_eq!(store.get_meta("k").await.unwrap(), Some(b"first".to_vec()));
    store.set_meta("k", b"replaced").await.unwrap();
    assert_eq!(store.meta_insert_or_get("k", b"third").await.unwrap(), b"replaced");
    assert_eq!(store.meta_insert_or_get("empty", b"").await.unwrap(), b"");
}

async fn agents_crud(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    store.add_agent(&agent("codex")).await.unwrap();
    store.add_agent(&agent("claude")).await.unwrap();
    let err = store.add_agent(&agent("codex")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists { what } if what.contains("codex")),
        "{err:?}"
    );
    let names: Vec<_> = store.list_agents().await.unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["claude", "codex"]);
    assert!(store.remove_agent("codex").await.unwrap());
    assert!(!store.remove_agent("codex").await.unwrap());
    assert_eq!(store.list_agents().await.unwrap(), vec![agent("claude")]);
}

async fn secrets_crud(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    assert_eq!(store.get_secret("gh").await.unwrap(), None);
    store.put_secret(&secret("gh", 1, "k1")).await.unwrap();
    store.put_secret(&secret("aws", 1, "k1")).await.unwrap();
    store.put_secret(&secret("gh", 2, "k1")).await.unwrap();
    assert_eq!(store.get_secret("gh").await.unwrap(), Some(secret("gh", 2, "k1")));
    assert_eq!(
        store.list_secrets().await.unwrap(),
        vec![secret("aws", 1, "k1"), secret("gh", 2, "k1")]
    );
    assert!(store.remove_secret("aws").await.unwrap());
    assert!(!store.remove_secret("aws").await.unwrap());
    assert_eq!(store.list_secrets().await.unwrap(), vec![secret("gh", 2, "k1")]);
}

async fn replace_secrets_atomically_is_all_or_nothing(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    for n in ["a", "b", "c"] {
        store.put_secret(&secret(n, 1, "old")).await.unwrap();
    }
    let rotated: Vec<_> = ["a", "b", "c"].iter().map(|n| secret(n, 1, "new")).collect();
    store.replace_secrets_atomically(&rotated).await.unwrap();
    assert_eq!(store.list_secrets().await.unwrap(), rotated);

    // One row that does not exist: nothing changes.
    let bad = vec![
        secret("a", 1, "newer"),
        secret("zzz", 1, "newer"),
        secret("c", 1, "newer"),
    ];
    let err = store.replace_secrets_atomically(&bad).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what.contains("zzz")),
        "{err:?}"
    );
    assert_eq!(store.list_secrets().await.unwrap(), rotated);
    assert_eq!(store.get_secret("zzz").await.unwrap(), None);
}

async fn audit_append_head_page_tail(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    assert_eq!(store.audit_head().await.unwrap(), None);
    assert!(store.audit_tail(5).await.unwrap().is_empty());
    let first = store.append_audit_chained(batch(1, 0), &events(1..=10)).await.unwrap();
    let second = store.append_audit_chained(batch(2, 0), &events(11..=25)).await.unwrap();
    let empty = store.append_audit_chained(batch(1, 1), &[]).await.unwrap();
    assert_eq!((first.first_seq, second.first_seq), (1, 11));
    assert_eq!(
        empty,
        Chained {
            first_seq: 26,
            hashes: vec![]
        }
    );
    assert_eq!(second.last(), Some((25, second.hashes[14])));

    // Each record is the event given, linked to the one before and hashed as returned.
    let rows = store.audit_page(0, 100).await.unwrap();
    let returned: Vec<_> = first.hashes.iter().chain(&second.hashes).collect();
    let mut prev = GENESIS;
    for (i, r) in rows.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!((r.seq, r.ts_ms), (n as i64, event(n).ts_ms as i64));
        assert_eq!((r.prev_hash.as_slice(), &r.body), (&prev[..], &event(n).canonical()));
        let hash = chain_hash(&prev, n, &r.body);
        assert_eq!((r.hash.as_slice(), returned[i]), (&hash[..], &hash), "seq {n}");
        prev = hash;
    }
    assert_eq!(rows.len(), 25);
    assert_eq!(store.audit_head().await.unwrap(), Some((25, prev.to_vec())));
    assert_eq!(verify_chain(&store, verify_sig, KEY).await.unwrap().records, 25);

    assert_eq!(store.audit_page(0, 10).await.unwrap(), rows[..10]);
    assert_eq!(store.audit_page(20, 10).await.unwrap(), rows[20..]);
    assert!(store.audit_page(25, 10).await.unwrap().is_empty());
    assert!(store.audit_page(0, 0).await.unwrap().is_empty());
    assert_eq!(store.audit_tail(3).await.unwrap(), rows[22..]);
    assert_eq!(store.audit_tail(100).await.unwrap(), rows);
}

async fn a_retried_batch_lands_once(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let first = store.append_audit_chained(batch(1, 0), &events(1..=3)).await.unwrap();
    store.append_audit_chained(batch(2, 0), &events(4..=5)).await.unwrap();
    // Writer 1 retries batch 0, as after a commit whose acknowledgement was lost: recognised
    // (though another writer appended since), not appended again.
    let again = store.append_audit_chained(batch(1, 0), &events(1..=3)).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(store.audit_head().await.unwrap().map(|h| h.0), Some(5));
    // Its next batch is appended as usual.
    let next = store.append_audit_chained(batch(1, 1), &events(6..=6)).await.unwrap();
    assert_eq!(next.first_seq, 6);
    // The same id with other events is no retry: refused, nothing written.
    let err = store
        .append_audit_chained(batch(1, 1), &events(7..=8))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { seq: Some(6), .. }), "{err:?}");
    assert_eq!(store.audit_head().await.unwrap().map(|h| h.0), Some(6));
    assert_eq!(verify_chain(&store, verify_sig, KEY).await.unwrap().records, 6);
}

async fn checkpoints_crud(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    assert_eq!(store.last_checkpoint().await.unwrap(), None);
    let cp = |seq: i64| CheckpointRow {
        seq,
        hash: vec![1; 32],
        signature: vec![2; 64],
        public_key: vec![3; 32],
        ts_ms: 7,
    };
    store.put_checkpoint(&cp(20)).await.unwrap();
    store.put_checkpoint(&cp(10)).await.unwrap();
    // The same checkpoint again (a retry) is fine, even signed at another time; another is not.
    store.put_checkpoint(&cp(10)).await.unwrap();
    store
        .put_checkpoint(&CheckpointRow { ts_ms: 8, ..cp(10) })
        .await
        .unwrap();
    let other = CheckpointRow {
        signature: vec![4; 64],
        ..cp(10)
    };
    let err = store.put_checkpoint(&other).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists { what } if what.contains("seq 10")),
        "{err:?}"
    );
    assert_eq!(store.checkpoints().await.unwrap(), vec![cp(10), cp(20)]);
    assert_eq!(store.last_checkpoint().await.unwrap(), Some(cp(20)));
}

async fn audit_rows_cannot_be_updated_or_deleted_through_sql(backend: Backend) {
    let (db, store) = new_db(backend).await;
    store.append_audit_chained(batch(1, 0), &events(1..=1)).await.unwrap();
    let before = store.audit_page(0, 10).await.unwrap();
    let cp = CheckpointRow {
        seq: 1,
        hash: vec![1; 32],
        signature: vec![2; 64],
        public_key: vec![3; 32],
        ts_ms: 7,
    };
    store.put_checkpoint(&cp).await.unwrap();
    let raw = db.raw().await;
    let zero = db.bytes(&[0]);
    let mut attempts = vec![
        format!("UPDATE audit_records SET body = {zero}"),
        "DELETE FROM audit_records".to_owned(),
        format!("UPDATE audit_checkpoints SET signature = {zero}"),
        "DELETE FROM audit_checkpoints".to_owned(),
    ];
    if backend == Backend::Postgres {
        // TRUNCATE skips row triggers; PostgreSQL has statement-level ones for it.
        attempts.extend(["TRUNCATE audit_records", "TRUNCATE audit_checkpoints"].map(String::from));
    }
    for sql in attempts {
        let err = raw.try_exec(&sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // A second record at a taken seq (a fork) is refused by the primary key.
    let b = db.bytes(&[0; 32]);
    let fork = format!("INSERT INTO audit_records (seq, ts_ms, prev_hash, hash, body) VALUES (1, 0, {b}, {b}, {b})");
    let err = raw.try_exec(&fork).await.unwrap_err();
    assert!(
        err.as_database_error().is_some_and(|e| e.is_unique_violation()),
        "{err}"
    );
    assert_eq!(store.audit_page(0, 10).await.unwrap(), before);
}

#[tokio::test]
async fn in_memory_store_persists_for_its_lifetime() {
    let store = Store::open_in_memory().await.unwrap();
    store.add_agent(&agent("a")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert_eq!(store.clone().list_agents().await.unwrap(), vec![agent("a")]);
    let other = Store::open("sqlite::memory:").await.unwrap();
    assert!(
        other.list_agents().await.unwrap().is_empty(),
        "each in-memory store is private"
    );
}

async fn corrupted_rows_are_reported_not_panicked(backend: Backend) {
    let (db, store) = new_db(backend).await;
    store.set_meta("m", b"v").await.unwrap();
    store.add_agent(&agent("bot")).await.unwrap();
    store.put_secret(&secret("gh", 1, "k")).await.unwrap();
    store.append_audit_chained(batch(1, 0), &events(1..=3)).await.unwrap();
    let raw = db.raw().await;
    raw.drop_guards().await;
    // SQLite stores any value in any column; PostgreSQL columns can be retyped, or lose NOT NULL.
    raw.exec(db.pick(
        "UPDATE meta SET value = 'text'; UPDATE agents SET created_ms = 'yesterday'; \
         UPDATE secrets SET nonce = 'not-a-blob'; UPDATE audit_records SET hash = hex(hash) WHERE seq = 2",
        "ALTER TABLE meta ALTER COLUMN value TYPE TEXT USING encode(value, 'escape'); \
         ALTER TABLE agents ALTER COLUMN created_ms TYPE TEXT; \
         ALTER TABLE secrets ALTER COLUMN nonce TYPE TEXT USING encode(nonce, 'hex'); \
         ALTER TABLE audit_records ALTER COLUMN hash DROP NOT NULL; \
         UPDATE audit_records SET hash = NULL WHERE seq = 2",
    ))
    .await;

    let corrupt = |r: Result<(), StoreError>, needle: &str, want_seq: Option<i64>| match r {
        Err(StoreError::Corrupt { what, seq }) => {
            assert!(what.contains(needle), "{what} should mention {needle}");
            assert_eq!(seq, want_seq, "{what}");
        }
        other => panic!("expected Corrupt naming {needle}, got {other:?}"),
    };
    corrupt(store.get_meta("m").await.map(drop), "value", None);
    corrupt(store.list_agents().await.map(drop), "\"bot\"", None);
    corrupt(store.get_secret("gh").await.map(drop), "nonce", None);
    corrupt(store.list_secrets().await.map(drop), "\"gh\"", None);
    corrupt(store.audit_page(0, 10).await.map(drop), "hash", Some(2));
    corrupt(store.audit_tail(2).await.map(drop), "hash", Some(2));
    assert_eq!(
        store.audit_head().await.unwrap().map(|h| h.0),
        Some(3),
        "an intact row still reads"
    );

    // NULL where the schema forbids it (SQLite: the table rebuilt without constraints).
    raw.exec(db.pick(
        "ALTER TABLE audit_records RENAME TO old; \
         CREATE TABLE audit_records (seq INTEGER PRIMARY KEY, ts_ms, prev_hash, hash, body); \
         INSERT INTO audit_records SELECT * FROM old; DROP TABLE old; \
         UPDATE audit_records SET hash = x'00', body = NULL WHERE seq = 1",
        "ALTER TABLE audit_records ALTER COLUMN body DROP NOT NULL; \
         UPDATE audit_records SET hash = '\\x00', body = NULL WHERE seq = 1",
    ))
    .await;
    corrupt(store.audit_page(0, 10).await.map(drop), "body is NULL", Some(1));
}
