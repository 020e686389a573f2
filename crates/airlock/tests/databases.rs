//! The PostgreSQL gateway end to end: a real `airlock serve` with `gateway.postgres_listen`, the
//! real PostgreSQL server CI starts (role `airlock_gw`, scripts/postgres-for-tests.sh), and real
//! clients (`psql`, `tokio-postgres`, psycopg) logging in with the agent's name and token over TLS.
mod pg;
mod support;

use std::process::Stdio;

use pg::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reads_pass_writes_are_refused_and_drop_table_waits_for_a_human() {
    let db = database().await;
    let (gw, token, _) = start(&db);

    let (ok, out) = psql(&gw, "analyst", &token, "SELECT count(*) FROM t").await;
    assert!(ok && out.trim() == "1", "{out}\n{}", gw.logs());
    // The server sees airlock's session under the agent's name, never a credential.
    let sql = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()";
    let (ok, out) = psql(&gw, "analyst", &token, sql).await;
    assert!(ok && out.trim() == "airlock:analyst", "{out}");

    // Denied: 42501 with the rule and its reason; the row is still there.
    let (ok, out) = psql(&gw, "analyst", &token, "DELETE FROM t").await;
    assert!(!ok && out.contains("42501"), "{out}");
    assert!(
        out.contains("agents do not change data") && out.contains("no writes"),
        "{out}"
    );
    assert_eq!(
        direct(&db)
            .await
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1
    );

    // A SELECT hiding a DROP after it is held as a whole; denied, nothing of it ran.
    let mut events = Events::open(&gw).await;
    let held = {
        let (gw_addr, ca, token) = (gw.databases, gw.ca_path(), token.clone());
        tokio::spawn(async move {
            let addr = gw_addr.unwrap();
            tokio::process::Command::new("psql")
                .args(["-X", "-v", "VERBOSITY=verbose", "-tA", "-c", "SELECT 1; DROP TABLE t"])
                .env("PGHOST", addr.ip().to_string())
                .env("PGPORT", addr.port().to_string())
                .env("PGUSER", "analyst")
                .env("PGDATABASE", "app")
                .env("PGPASSWORD", token)
                .env("PGSSLMODE", "verify-full")
                .env("PGSSLROOTCERT", ca)
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap()
        })
    };
    let id = events.next("pending").await;
    let card = text(&gw.control_cli(&["approvals", "show", &id]));
    assert!(card.contains("DROP TABLE t") && card.contains("analyst"), "{card}");
    assert!(!card.contains(REAL));
    let o = gw.control_cli(&["approvals", "deny", &id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = held.await.unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("42501") && out.contains("denied by"), "{out}");
    assert!(table_exists(&db).await, "a denied DROP ran");

    // DROP TABLE alone: held, approved, then executed once.
    let held = {
        let (gw_addr, ca, token) = (gw.databases, gw.ca_path(), token.clone());
        tokio::spawn(async move {
            let addr = gw_addr.unwrap();
            tokio::process::Command::new("psql")
                .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", "DROP TABLE t"])
                .env("PGHOST", addr.ip().to_string())
                .env("PGPORT", addr.port().to_string())
                .env("PGUSER", "analyst")
                .env("PGDATABASE", "app")
                .env("PGPASSWORD", token)
                .env("PGSSLMODE", "verify-full")
                .env("PGSSLROOTCERT", ca)
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap()
        })
    };
    let id = events.next("pending").await;
    assert!(table_exists(&db).await, "nothing reaches the server while held");
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = held.await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!table_exists(&db).await, "the approved DROP ran");

    // One record per statement; the text only for held ones; never the real password.
    let audit = gw.audit();
    let db_records: Vec<_> = audit.iter().filter(|r| r["kind"] == "database").collect();
    let forwarded = db_records
        .iter()
        .filter(|r| r["detail"]["statement"] == "DROP TABLE t" && r["detail"]["forwarding"] == true)
        .count();
    assert_eq!(forwarded, 1, "{db_records:#?}");
    let allowed = db_records
        .iter()
        .find(|r| r["decision"] == "allow")
        .expect("a read's record");
    assert!(allowed["detail"]["statement"].is_null() && allowed["detail"]["digest"].is_string());
    let everything = format!("{audit:?}{}", gw.logs());
    assert!(!everything.contains(REAL), "the real password leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_is_decided_and_a_refusal_leaves_the_transaction_failed() {
    let db = database().await;
    let (gw, token, _) = start(&db);
    let c = rust_client(&gw, &token).await;

    // Prepared (extended protocol) reads pass, with parameters.
    let row = c
        .query_one("SELECT count(*) FROM t WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);

    // A refused statement inside a transaction leaves it failed, as PostgreSQL would.
    c.batch_execute("BEGIN").await.unwrap();
    let e = c.execute("DELETE FROM t", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e:?}");
    let e = c.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(
        sqlstate(&e),
        "25P02",
        "the server is in the failed transaction too: {e:?}"
    );
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    let e = c.batch_execute("UPDATE t SET id = 2").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");

    // DDL through a prepared statement is held at Bind, and runs after the approval.
    let mut events = Events::open(&gw).await;
    let run = tokio::spawn(async move { c.execute("DROP TABLE t", &[]).await.map_err(|e| sqlstate(&e)) });
    let id = events.next("pending").await;
    assert!(table_exists(&db).await);
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    run.await.unwrap().unwrap();
    assert!(!table_exists(&db).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_agents_own_token_over_tls_logs_in() {
    let db = database().await;
    let (gw, token, intruder) = start(&db);
    let cases = [
        ("analyst", "wrong-token"),
        // The placeholder is not a credential outside a sandbox.
        ("analyst", "airlock-db-app"),
        // Another agent's token under this agent's name.
        ("analyst", intruder.as_str()),
        // An agent without the database.
        ("intruder", intruder.as_str()),
        // The real password gets nobody in through airlock.
        ("analyst", REAL),
    ];
    for (user, pw) in cases {
        let (ok, out) = psql(&gw, user, pw, "SELECT 1").await;
        assert!(
            !ok && out.contains("password authentication failed"),
            "{user}/{pw}: {out}"
        );
    }
    // Without TLS the token is never asked for.
    let addr = gw.databases.unwrap();
    let o = tokio::process::Command::new("psql")
        .args(["-X", "-tA", "-c", "SELECT 1"])
        .env("PGHOST", addr.ip().to_string())
        .env("PGPORT", addr.port().to_string())
        .env("PGUSER", "analyst")
        .env("PGDATABASE", "app")
        .env("PGPASSWORD", &token)
        .env("PGSSLMODE", "disable")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && out.contains("accepts TLS only"), "{out}");
    let (ok, _) = psql(&gw, "analyst", &token, "SELECT 1").await;
    assert!(ok);
    assert!(!gw.logs().contains(REAL));
}

/// psycopg 3 (installed by .ci/run): parameters travel through the Extended protocol.
const PSYCOPG: &str = r#"
import sys, psycopg
host, port, token, ca = sys.argv[1:5]
conn = psycopg.connect(host=host, port=port, user="analyst", password=token, dbname="app",
                       sslmode="verify-full", sslrootcert=ca)
cur = conn.cursor()
cur.execute("SELECT count(*) FROM t WHERE id = %s", (1,))
assert cur.fetchone()[0] == 1
try:
    cur.execute("DELETE FROM t WHERE id = %s", (1,))
    sys.exit("a refused write ran")
except psycopg.errors.InsufficientPrivilege as e:
    assert "no writes" in (e.diag.message_detail or ""), e.diag.message_detail
    print("refused:", e.sqlstate)
# psycopg opened a transaction: it is failed now, as PostgreSQL leaves it.
assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
conn.rollback()
cur.execute("SELECT count(*) FROM t")
print("rows:", cur.fetchone()[0])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_reads_pass_and_a_refused_write_fails_the_transaction() {
    let db = database().await;
    let (gw, token, _) = start(&db);
    let (ok, out) = psycopg(&gw, &token, PSYCOPG, &db).await;
    assert!(ok, "{out}\n{}", gw.logs());
    assert!(out.contains("refused: 42501") && out.contains("rows: 1"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_cancels_a_running_statement_through_the_gateway() {
    let db = database().await;
    let (gw, token, _) = start(&db);
    let c = rust_client(&gw, &token).await;
    let server_pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let cancel = c.cancel_token();
    let running = tokio::spawn(async move {
        let r = c.simple_query("SELECT pg_sleep(30)").await.map(|_| ());
        (c, r)
    });
    waiting(&db, Some(server_pid), "PgSleep").await;
    // tokio-postgres sends the CancelRequest as it connected: SSLRequest, TLS, then the request.
    cancel.cancel_query(client_tls(&gw)).await.unwrap();
    let (c, r) = tokio::time::timeout(std::time::Duration::from_secs(25), running)
        .await
        .expect("the statement was not cancelled")
        .unwrap();
    assert_eq!(sqlstate(&r.unwrap_err()), "57014");
    // The session goes on.
    assert_eq!(c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    assert!(gw.logs().contains("database cancel request forwarded"), "{}", gw.logs());
}

/// psycopg over libpq 17: the client holds airlock's minted process id, not the server's; raw
/// CancelRequests with a wrong key (plain and inside TLS, for the minted and for the server's
/// process id) cancel nothing; libpq's plain `cancel()` and its TLS `cancel_safe()` both do.
const PSYCOPG_CANCEL: &str = r#"
import socket, ssl, struct, sys, threading, time, psycopg
host, port, token, ca, direct = sys.argv[1:6]
a = psycopg.connect(host=host, port=port, user="analyst", password=token, dbname="app",
                    sslmode="verify-full", sslrootcert=ca, autocommit=True)
minted = a.info.backend_pid
real = a.execute("SELECT pg_backend_pid()").fetchone()[0]
assert minted != real, "the client got the server's process id"
watch = psycopg.connect(direct, autocommit=True)

def waiting(event):
    # Polled: the server announces no such event.
    sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event = %s"
    for _ in range(3000):
        if watch.execute(sql, (real, event)).fetchone()[0] == 1:
            return
        time.sleep(0.01)
    sys.exit(f"backend never waited on {event}")

outcome = {}
def run(sql):
    try:
        a.execute(sql)
        outcome["r"] = "ran"
    except psycopg.Error as e:
        outcome["r"] = e.sqlstate

def raw_cancel(pid, key, tls):
    s = socket.create_connection((host, int(port)))
    if tls:
        s.sendall(struct.pack("!ii", 8, 80877103))
        assert s.recv(1) == b"S"
        s = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname=host)
    s.sendall(struct.pack("!iii", 16, 80877102, pid) + key)
    # No answer; the gateway closes once it has handled the request.
    assert s.recv(1) == b""
    s.close()

# Wrong keys: `a` waits for a lock held here; had any cancel reached its backend, the signal
# would be pending before the lock is released, and the statement would fail with 57014.
lock = psycopg.connect(direct)
lock.execute("SELECT pg_advisory_xact_lock(4242)")
t = threading.Thread(target=run, args=("SELECT pg_advisory_xact_lock(4242)",))
t.start()
waiting("advisory")
for tls in (False, True):
    for pid in (minted, real):
        raw_cancel(pid, b"\x00\x00\x00\x00", tls)
        raw_cancel(pid, b"\x5a\x5a\x5a\x5a", tls)
lock.commit()
t.join()
assert outcome["r"] == "ran", outcome
print("wrong keys cancelled nothing")

for how in ("cancel", "cancel_safe"):
    t = threading.Thread(target=run, args=("SELECT pg_sleep(30)",))
    t.start()
    waiting("PgSleep")
    getattr(a, how)()
    t.join(25)
    assert not t.is_alive(), f"{how}: the statement was not cancelled"
    assert outcome["r"] == "57014", (how, outcome)
    assert a.execute("SELECT 1").fetchone()[0] == 1
    print(how, "cancelled:", outcome["r"])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_cancels_in_plain_and_in_tls_and_a_wrong_key_cancels_nothing() {
    let db = database().await;
    let (gw, token, _) = start(&db);
    let (ok, out) = psycopg(&gw, &token, PSYCOPG_CANCEL, &db).await;
    let logs = gw.logs();
    assert!(ok, "{out}\n{logs}");
    assert!(out.contains("wrong keys cancelled nothing"), "{out}");
    assert!(
        out.contains("cancel cancelled: 57014") && out.contains("cancel_safe cancelled: 57014"),
        "{out}"
    );
    // libpq's cancel() sends plain, cancel_safe() inside TLS (sslmode): both were forwarded.
    let forwarded: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("database cancel request forwarded"))
        .collect();
    assert_eq!(forwarded.len(), 2, "{logs}");
    // (`tls` is the line's last field; the log may be coloured.)
    assert!(
        forwarded.iter().any(|l| l.trim_end().ends_with("false"))
            && forwarded.iter().any(|l| l.trim_end().ends_with("true")),
        "{logs}"
    );
    assert_eq!(logs.matches("matches no live session").count(), 8, "{logs}");
    assert!(!logs.contains(REAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_ctrl_c_cancels_its_statement_through_the_gateway() {
    let db = database().await;
    let (gw, token, _) = start(&db);
    let psql = psql_command(&gw, "analyst", &token, &["-c", "SELECT pg_sleep(30)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    waiting(&db, None, "PgSleep").await;
    // Ctrl-C: psql sends a CancelRequest with the BackendKeyData it got at login.
    let pid = psql.id().unwrap().to_string();
    let o = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(o.success());
    let o = tokio::time::timeout(std::time::Duration::from_secs(25), psql.wait_with_output())
        .await
        .expect("psql's statement was not cancelled")
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("57014"), "{err}\n{}", gw.logs());
    assert!(gw.logs().contains("database cancel request forwarded"));
}

/// LISTEN/NOTIFY through the gateway (as the loader, whose rules pass `other`): a client's own
/// notification names the process id it knows (the minted one); another session's names that
/// session's server process id.
const PSYCOPG_NOTIFY: &str = r#"
import sys, psycopg
host, port, token, ca = sys.argv[1:5]
def connect():
    return psycopg.connect(host=host, port=port, user="loader", password=token, dbname="app",
                           sslmode="verify-full", sslrootcert=ca, autocommit=True)
a, b = connect(), connect()
got = []
a.add_notify_handler(got.append)
a.execute("LISTEN airlock_test")
a.execute("NOTIFY airlock_test, 'mine'")
b.execute("NOTIFY airlock_test, 'theirs'")
a.execute("SELECT 1")
mine = [n for n in got if n.payload == "mine"]
theirs = [n for n in got if n.payload == "theirs"]
assert len(mine) == 1 and len(theirs) == 1, got
assert mine[0].pid == a.info.backend_pid, (mine, a.info.backend_pid)
assert theirs[0].pid == b.execute("SELECT pg_backend_pid()").fetchone()[0], theirs
assert theirs[0].pid != b.info.backend_pid
print("notifications ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_recognises_its_own_notifications_under_the_minted_process_id() {
    let db = database().await;
    let (gw, _, _) = start(&db);
    let (ok, out) = psycopg(&gw, &token_of(&gw, "loader"), PSYCOPG_NOTIFY, &db).await;
    assert!(ok && out.contains("notifications ok"), "{out}\n{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_agents_database_session_ends_at_the_reload() {
    let db = database().await;
    let (gw, token, _) = start(&db);
    let c = rust_client(&gw, &token).await;
    let other = rust_client_as(&gw, "loader", &token_of(&gw, "loader")).await;
    c.query_one("SELECT 1", &[]).await.unwrap();
    let o = gw.control_cli(&["agent", "rm", "analyst"]);
    assert!(o.status.success(), "{}", text(&o));
    // The open session is closed at once (the client hears why), and the token logs in no more.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !c.is_closed() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the removed agent's session stayed open: {}", gw.logs());
    assert!(c.query_one("SELECT 1", &[]).await.is_err());
    let (ok, out) = psql(&gw, "analyst", &token, "SELECT 1").await;
    assert!(!ok && out.contains("password authentication failed"), "{out}");
    // Another agent's session is untouched.
    assert!(other.simple_query("SELECT 1").await.is_ok());
    assert!(gw.logs().contains("connection closed: agent removed by reload"));
}
