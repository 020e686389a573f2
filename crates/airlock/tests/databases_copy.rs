//! COPY through the PostgreSQL gateway, both directions, with real clients (tokio-postgres's
//! Extended Query COPY, psycopg's Simple Query COPY) against the real server (tests/pg).
mod pg;
mod support;

use pg::*;

/// ~5 MB of COPY text rows (id, payload), in order.
fn copy_rows() -> Vec<u8> {
    let mut rows = Vec::new();
    for i in 0..50_000 {
        rows.extend_from_slice(format!("{i}\trow {i} {}\n", "x".repeat(90)).as_bytes());
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_copies_5_mb_in_and_out_and_the_session_keeps_count() {
    use futures_util::{SinkExt, TryStreamExt};
    let db = database().await;
    let (gw, _, _) = start(&db);
    let c = rust_client_as(&gw, "loader", &token_of(&gw, "loader")).await;
    let rows = copy_rows();
    assert!(rows.len() > 5_000_000);

    // COPY FROM STDIN through the Extended protocol: Bind, Execute, Sync, then the data.
    let sink = c.copy_in("COPY big FROM STDIN").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    for chunk in rows.chunks(64 * 1024) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(sink.as_mut().finish().await.unwrap(), 50_000);

    // COPY TO STDOUT: the same bytes come back.
    let out: Vec<bytes::Bytes> = c
        .copy_out("COPY (SELECT * FROM big ORDER BY id) TO STDOUT")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(out.concat() == rows, "COPY TO STDOUT returned other bytes");

    // The session still knows what the server owes it: a refusal inside a transaction waits
    // for every earlier answer (the Sync sent into copy-in was ignored by the server).
    let refused = async {
        c.batch_execute("BEGIN").await.unwrap();
        let e = c.batch_execute("DO $$ BEGIN END $$").await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{e:?}");
        let e = c.query_one("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), "25P02", "{e:?}");
        c.batch_execute("ROLLBACK").await.unwrap();
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), refused)
        .await
        .expect("the session lost count of the server's answers after COPY");
    let n: i64 = c.query_one("SELECT count(*) FROM big", &[]).await.unwrap().get(0);
    assert_eq!(n, 50_000);
}

/// psycopg (Simple Query COPY): rows in and out, a CopyFail, refusals for COPY … PROGRAM and
/// for an agent whose rules do not name `copy`.
const PSYCOPG_COPY: &str = r#"
import sys, psycopg
host, port, token, ca, direct, analyst = sys.argv[1:7]
def connect(user, password):
    return psycopg.connect(host=host, port=port, user=user, password=password, dbname="app",
                           sslmode="verify-full", sslrootcert=ca, autocommit=True)
conn = connect("loader", token)
rows = [(i, f"row {i} " + "y" * 90) for i in range(50000)]
cur = conn.cursor()
with cur.copy("COPY big (id, payload) FROM STDIN") as cp:
    for r in rows:
        cp.write_row(r)
assert cur.rowcount == 50000, cur.rowcount
out = []
with cur.copy("COPY (SELECT id, payload FROM big ORDER BY id) TO STDOUT") as cp:
    for r in cp.rows():
        out.append((int(r[0]), r[1]))
assert out == rows, "COPY TO STDOUT returned other rows"
print("copied in and out:", len(out))

# The client gives up half way: CopyFail; nothing of it is kept and the session goes on.
try:
    with cur.copy("COPY big (id, payload) FROM STDIN") as cp:
        cp.write_row((-1, "never"))
        raise RuntimeError("client gives up")
except (RuntimeError, psycopg.errors.QueryCanceled) as e:
    print("copy failed:", type(e).__name__)
assert cur.execute("SELECT count(*) FROM big WHERE id = -1").fetchone()[0] == 0
assert cur.execute("SELECT count(*) FROM big").fetchone()[0] == 50000

for sql in ["COPY (SELECT 1) TO PROGRAM 'true'", "COPY big FROM PROGRAM 'true'"]:
    try:
        cur.execute(sql)
        sys.exit(f"{sql} ran")
    except psycopg.errors.InsufficientPrivilege:
        print("refused:", sql)

# The analyst's rules do not name `copy` (reads only, writes denied): both directions refused.
a = connect("analyst", analyst).cursor()
for sql in ["COPY big FROM STDIN", "COPY big TO STDOUT"]:
    try:
        with a.copy(sql) as cp:
            pass
        sys.exit(f"{sql} ran for the analyst")
    except psycopg.errors.InsufficientPrivilege:
        print("refused for the analyst:", sql)
assert cur.execute("SELECT count(*) FROM big").fetchone()[0] == 50000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_copies_both_ways_a_copy_fail_ends_cleanly_and_copy_program_is_refused() {
    let db = database().await;
    let (gw, analyst, _) = start(&db);
    let (ok, out) = psycopg_with(&gw, &token_of(&gw, "loader"), PSYCOPG_COPY, &db, &[&analyst]).await;
    assert!(ok, "{out}\n{}", gw.logs());
    assert!(out.contains("copied in and out: 50000"), "{out}");
    assert!(out.contains("copy failed"), "{out}");
    assert_eq!(out.matches("refused:").count(), 2, "{out}");
    assert_eq!(out.matches("refused for the analyst:").count(), 2, "{out}");
}
