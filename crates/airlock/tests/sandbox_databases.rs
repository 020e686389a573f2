//! The database leg under `airlock run` (invariants 1 and 2): a sandboxed `psql` under
//! bubblewrap reaches the real PostgreSQL server only through the relay's local port and the
//! gateway's database socket for its agent. The sandbox holds the database's placeholder, never
//! the real password nor the agent's token; statements pass the same rules as on the listener.
mod pg;
mod support;

use std::process::{Output, Stdio};

use pg::*;
use support::*;

/// The server's own `psql` (Debian's /usr/bin/psql is a Perl wrapper reading /etc files the
/// sandbox does not get).
fn psql_binary() -> String {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's client is required for these tests (.ci/run installs it)")
        .filter_map(|e| Some(e.ok()?.path().join("bin/psql")))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/psql (.ci/run installs it)")
        .display()
        .to_string()
}

/// DDL denied outright (the shared config holds it for approval).
fn denying_config(db: &str) -> String {
    let held = "action = \"approve\"\napprovers = [\"senior-engineer\"]";
    let c = config(db);
    assert!(c.contains(held));
    c.replace(
        held,
        "action = \"deny\"\nreason = \"schema changes are not made from a sandbox\"",
    )
}

/// `airlock run --agent AGENT --runtime bwrap -- sh -c SCRIPT`.
async fn run(gw: &Gateway, agent: &str, script: &str) -> Output {
    let bwrap = std::process::Command::new("bwrap").arg("--version").output();
    assert!(
        bwrap.is_ok_and(|o| o.status.success()),
        "bwrap is required for these tests (.ci/run installs it)"
    );
    run_in(gw, agent, &["--runtime", "bwrap", "--", "sh", "-c", script]).await
}

async fn run_in(gw: &Gateway, agent: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&gw.config)
        .args(["run", "--agent", agent])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxed_psql_reaches_the_database_only_through_the_gateway() {
    let db = database().await;
    let (gw, token, _) = start_with(&denying_config(&db));
    let psql = psql_binary();
    // The environment first, then a read (libpq's defaults: PGHOST, PGSSLMODE=verify-full, …),
    // then DDL through DATABASE_URL (the URL's own sslmode and sslrootcert), then a wrong password.
    let script = format!(
        "env; \
         {psql} -X -tA -v ON_ERROR_STOP=1 -c \"SELECT current_setting('application_name') || '|' || count(*) FROM t\"; \
         echo read-exit=$?; \
         {psql} -X -v VERBOSITY=verbose \"$DATABASE_URL\" -c 'DROP TABLE t'; echo drop-exit=$?; \
         PGPASSWORD=airlock-db-wrong {psql} -X -tA -c 'SELECT 1'; echo wrong-exit=$?"
    );
    let o = run(&gw, "analyst", &script).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}\n{}", gw.logs());

    // What the sandbox holds: the placeholder, the local port, airlock's CA; nothing else.
    let url = "DATABASE_URL=postgres://analyst:airlock-db-app@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/run/airlock/ca.pem";
    for line in [
        url,
        "PGHOST=127.0.0.1",
        "PGPORT=5432",
        "PGUSER=analyst",
        "PGPASSWORD=airlock-db-app",
        "PGDATABASE=app",
        "PGSSLMODE=verify-full",
        "PGSSLROOTCERT=/run/airlock/ca.pem",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing: {out}");
    }

    // The read ran on the server in airlock's session for this agent (the gateway logged in).
    assert!(out.contains("airlock:analyst|1\nread-exit=0"), "{out}\n{}", gw.logs());
    // The DROP was refused by the deny rule, with 42501; the table is still there.
    assert!(out.contains("42501"), "{out}");
    assert!(out.contains("schema changes are not made from a sandbox"), "{out}");
    assert!(out.contains("drop-exit=1"), "{out}");
    assert!(table_exists(&db).await);
    // The socket is the identity, the placeholder the password: another one is refused.
    assert!(
        out.contains("28P01") || out.contains("password authentication failed"),
        "{out}"
    );
    assert!(out.contains("wrong-exit=2"), "{out}");

    // Audited as the agent's statements; the real password and the agent's token nowhere.
    let audit = gw.audit();
    let db_records: Vec<_> = audit.iter().filter(|r| r["kind"] == "database").collect();
    assert!(
        db_records.iter().any(|r| r["agent"] == "analyst"
            && r["decision"] == "deny"
            && r["rules"][0] == "schema changes need a senior engineer"),
        "{db_records:#?}"
    );
    assert!(
        db_records
            .iter()
            .any(|r| r["agent"] == "analyst" && r["decision"] == "allow")
    );
    let everything = format!("{out}{audit:?}{}", gw.logs());
    assert!(!everything.contains(REAL), "the real password leaked");
    assert!(!out.contains(&token), "the agent's token entered the sandbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_databases_gets_no_database_port() {
    let db = database().await;
    let (gw, _, _) = start_with(&config(&db));
    let psql = psql_binary();
    // "intruder" lists no database: no variables, no socket, nothing listens on 5432 inside.
    let script = format!(
        "env | grep -c '^PG\\|^DATABASE_URL'; \
         {psql} -X -tA -h 127.0.0.1 -p 5432 -U intruder -d app -c 'SELECT 1'; echo psql-exit=$?"
    );
    let o = run(&gw, "intruder", &script).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.starts_with("0\n"), "{out}");
    assert!(out.contains("psql-exit=2") && out.contains("refused"), "{out}");
}

/// Docker and Podman: the relay container mounts the database socket and listens on the loopback
/// the agent's container shares. The agent image has no psql: a minimal client in Python speaks
/// the protocol, verifying the gateway's leaf against PGSSLROOTCERT for PGHOST.
async fn container_agent_reaches_the_database_through_the_relay_container(engine: &str) {
    let ok = std::process::Command::new(engine)
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{engine} is required for these tests (.ci/run installs it)");
    let scripts: &[&str] = if engine == "podman" {
        &["build.sh", "to-podman.sh"]
    } else {
        &["build.sh"]
    };
    for script in scripts {
        let path = format!("{}/../../images/{script}", env!("CARGO_MANIFEST_DIR"));
        let o = std::process::Command::new("bash").arg(path).output().unwrap();
        assert!(o.status.success(), "images/{script} failed: {}", text(&o));
    }
    let db = database().await;
    let (gw, token, _) = start_with(&denying_config(&db));
    let probe = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sandbox/pg_probe.py");
    let mount = format!("{probe}:/probe/pg_probe.py:ro");
    let read = "SELECT current_setting('application_name') || '|' || count(*) FROM t";
    let args = [
        "--runtime",
        engine,
        "--mount",
        &mount,
        "--",
        "python3",
        "/probe/pg_probe.py",
        read,
        "DROP TABLE t",
    ];
    let o = run_in(&gw, "analyst", &args).await;
    let out = text(&o);
    assert!(o.status.success(), "{engine}: {out}\n{}", gw.logs());
    assert!(out.contains("verified TLSv1.3"), "{engine}: {out}");
    assert!(out.contains("ok airlock:analyst|1"), "{engine}: {out}");
    assert!(
        out.contains("error 42501 airlock: schema changes are not made from a sandbox"),
        "{engine}: {out}"
    );
    assert!(table_exists(&db).await);
    let everything = format!("{out}{}", gw.logs());
    assert!(!everything.contains(REAL) && !everything.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_agent_reaches_the_database_through_the_relay_container() {
    container_agent_reaches_the_database_through_the_relay_container("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_agent_reaches_the_database_through_the_relay_container() {
    container_agent_reaches_the_database_through_the_relay_container("podman").await;
}

/// A gateway started before the agent had databases has no socket for them: `airlock run` says
/// so instead of starting a sandbox whose database port leads nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_when_the_gateway_serves_no_database_socket_for_the_agent() {
    let db = database().await;
    let (gw, _, _) = start_with(&config(&db));
    let now = std::fs::read_to_string(&gw.config).unwrap();
    let later = now.replace("name = \"intruder\"\n", "name = \"intruder\"\ndatabases = [\"app\"]\n");
    assert_ne!(now, later);
    std::fs::write(&gw.config, later).unwrap();
    let o = run_in(&gw, "intruder", &["--runtime", "bwrap", "--", "true"]).await;
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("not serving agent \"intruder\"'s databases") && out.contains("restart `airlock serve`"),
        "{out}"
    );
}
