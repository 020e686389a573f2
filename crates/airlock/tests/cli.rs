//! The operator's commands: init, agents, secrets, vault rotation, policy check/explain,
//! audit verify (invariants 10 and 11, and the fail-closed start).
mod support;
use std::os::unix::fs::PermissionsExt;
use support::*;

const CONFIG: &str = r#"
[gateway]
listen = "127.0.0.1:0"
control = "127.0.0.1:0"

[[agents]]
name = "mailbot"
secrets = ["gmail"]

[secrets.gmail]
hosts = ["gmail.googleapis.com"]
header = "Authorization"
format = "Bearer {secret}"
placeholder = "airlock-gmail"

[[rules]]
name = "gmail reads"
hosts = ["gmail.googleapis.com"]
methods = ["GET"]
action = "allow"

[[rules]]
name = "no deletes"
hosts = ["gmail.googleapis.com"]
methods = ["DELETE"]
action = "deny"
"#;

const REAL: &str = "ya29.REAL-gmail-token-0123456789";

#[test]
fn init_creates_a_private_setup_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(BIN)
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let data = dir.path().join("airlock-data");
    for f in ["master.key", "ca-key.pem", "control.token"] {
        let mode = std::fs::metadata(data.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // The CA: ECDSA P-256, CA:TRUE, pathlen:0.
    let o = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(data.join("ca.pem"))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(t.contains("CA:TRUE, pathlen:0"), "{t}");
    assert!(t.contains("prime256v1") || t.contains("P-256"), "{t}");
    let cfg = dir.path().join("airlock.toml");
    assert!(airlock(&cfg, &["policy", "check"], None, &[]).status.success());
    let o = std::process::Command::new(BIN)
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("refusing to overwrite"));
    let o = airlock(&cfg, &["ca", "path"], None, &[]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        data.join("ca.pem").to_string_lossy()
    );
    let o = airlock(&cfg, &["ca", "export"], None, &[]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn agents_and_secrets_never_show_values() {
    let (dir, cfg) = setup(CONFIG);
    let o = airlock(
        &cfg,
        &["secret", "set", "gmail"],
        Some(format!("{REAL}\n").as_bytes()),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(REAL));
    let o = airlock(&cfg, &["secret", "list"], None, &[]);
    let t = text(&o);
    assert!(
        t.contains("gmail") && t.contains("airlock-gmail") && t.contains("gmail.googleapis.com"),
        "{t}"
    );
    assert!(!t.contains(REAL));
    // airlock's own vault entries (audit signing key, approval buttons' key, created by init)
    // are neither listed nor removable.
    assert!(!t.contains("__airlock"), "{t}");
    for own in ["__airlock_audit_signing_key", "__airlock_button_token_key"] {
        let o = airlock(&cfg, &["secret", "rm", own], None, &[]);
        assert!(
            !o.status.success() && text(&o).contains("cannot be removed"),
            "{own}: {}",
            text(&o)
        );
    }
    let o = airlock(&cfg, &["secret", "set", "undeclared"], Some(b"x"), &[]);
    assert!(!o.status.success() && text(&o).contains("not declared"));

    let o = airlock(&cfg, &["agent", "add", "mailbot"], None, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    assert!(
        url.starts_with("http://mailbot:") && url.ends_with("@127.0.0.1:0"),
        "{url}"
    );
    let token = url
        .trim_start_matches("http://mailbot:")
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let db = std::fs::read(dir.path().join("airlock-data/airlock.db")).unwrap();
    for needle in [token.as_bytes(), REAL.as_bytes()] {
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "plaintext in the database"
        );
    }
    let o = airlock(&cfg, &["agent", "list"], None, &[]);
    assert!(text(&o).contains("mailbot") && !text(&o).contains(&token));
    assert!(airlock(&cfg, &["agent", "rm", "mailbot"], None, &[]).status.success());
    assert!(airlock(&cfg, &["secret", "rm", "gmail"], None, &[]).status.success());
}

#[test]
fn policy_check_names_file_line_and_key() {
    let (_dir, cfg) = setup(&format!(
        "{CONFIG}\n[[rules]]\nname = \"typo\"\nhosts = [\"x.com\"]\naction = \"alow\"\n"
    ));
    let o = airlock(&cfg, &["policy", "check"], None, &[]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("airlock.toml:31: rules[2].action: unknown action \"alow\""),
        "{t}"
    );
}

#[test]
fn policy_explain_shows_decision_rules_and_injection() {
    let (_dir, cfg) = setup(CONFIG);
    let o = airlock(
        &cfg,
        &[
            "policy",
            "explain",
            "DELETE",
            "https://gmail.googleapis.com/gmail/v1/users/me/messages/1",
        ],
        None,
        &[],
    );
    let t = text(&o);
    assert!(t.contains("decision: deny") && t.contains("no deletes"), "{t}");
    let o = airlock(
        &cfg,
        &[
            "policy",
            "explain",
            "GET",
            "https://gmail.googleapis.com/x",
            "--agent",
            "mailbot",
            "--header",
            "Authorization: Bearer airlock-gmail",
        ],
        None,
        &[],
    );
    let t = text(&o);
    assert!(
        t.contains("decision: allow") && t.contains("inject:   secret \"gmail\""),
        "{t}"
    );
    let o = airlock(
        &cfg,
        &[
            "policy",
            "explain",
            "GET",
            "https://evil.example/x",
            "--agent",
            "mailbot",
            "--header",
            "X: airlock-gmail",
        ],
        None,
        &[],
    );
    assert!(text(&o).contains("exfiltration blocked"), "{}", text(&o));
}

const DATABASES: &str = r#"
[gateway]
listen = "127.0.0.1:0"
control = "127.0.0.1:0"

[databases.prod]
kind = "postgres"
upstream = "db.internal:5432"
database = "app"
user = "app_rw"
password = "vault:prod-db"

[[agents]]
name = "analyst"
databases = ["prod"]

[[agents]]
name = "outsider"

[[rules]]
name = "reads are fine"
databases = ["prod"]
sql = ["read"]
action = "allow"

[[rules]]
name = "no dropping"
databases = ["prod"]
sql = ["ddl"]
action = "deny"
reason = "tables stay"
"#;

/// `policy explain --database --sql`: the gateway's classifier and database rules, from the
/// configuration alone (no gateway, no database server).
#[test]
fn policy_explain_decides_sql_statement_by_statement() {
    let (_dir, cfg) = setup(DATABASES);
    let explain = |extra: &[&str]| {
        let mut args = vec!["policy", "explain", "--database", "prod"];
        args.extend_from_slice(extra);
        let o = airlock(&cfg, &args, None, &[]);
        (o.status.success(), text(&o))
    };
    let (ok, t) = explain(&["--sql", "DROP TABLE x"]);
    assert!(ok, "{t}");
    for want in [
        "database: prod (postgres database \"app\" on db.internal:5432)",
        "classes:  ddl",
        "tables:   x",
        "decision: deny",
        "rule:     no dropping",
        "reason:   tables stay",
    ] {
        assert!(t.lines().any(|l| l == want), "{want:?} missing: {t}");
    }

    // A read hiding DDL after it: the whole is denied (as the gateway decides a Simple Query),
    // and each statement is shown with its own classes, tables and decision.
    let (ok, t) = explain(&["--agent", "analyst", "--sql", "SELECT * FROM a; DROP TABLE b"]);
    assert!(ok, "{t}");
    let lines: Vec<&str> = t.lines().collect();
    let at = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("{l:?} missing: {t}"))
    };
    assert!(at("statements: 2") < at("decision: deny"));
    assert!(at("classes:  read, ddl") < at("decision: deny"));
    let first = at("statement 1: SELECT * FROM a");
    let second = at("statement 2: DROP TABLE b");
    assert!(first < second, "{t}");
    assert_eq!(
        &lines[first + 1..first + 5],
        [
            "  classes:  read",
            "  tables:   a",
            "  decision: allow",
            "  rule:     reads are fine"
        ]
    );
    assert_eq!(
        &lines[second + 1..second + 5],
        [
            "  classes:  ddl",
            "  tables:   b",
            "  decision: deny",
            "  rule:     no dropping"
        ]
    );
    assert!(!t.contains("login:"), "{t}");

    // Text that does not parse reads restrictively; an agent without the database is told so.
    let (ok, t) = explain(&["--agent", "outsider", "--sql", "SELEC 1"]);
    assert!(ok, "{t}");
    assert!(t.contains("did not parse") && t.contains("decision: deny"), "{t}");
    assert!(t.contains("login:    refused: agent \"outsider\""), "{t}");

    // An undeclared database, and --sql without --database, are errors that say what to fix.
    let o = airlock(
        &cfg,
        &["policy", "explain", "--database", "nope", "--sql", "SELECT 1"],
        None,
        &[],
    );
    assert!(
        !o.status.success() && text(&o).contains("[databases.nope]"),
        "{}",
        text(&o)
    );
    let o = airlock(&cfg, &["policy", "explain", "--sql", "SELECT 1"], None, &[]);
    assert!(!o.status.success(), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_master_key_refuses_to_start_and_touches_nothing() {
    let up = upstream(true).await;
    let rest = "[[agents]]\nname = \"a\"\nsecrets = []\n";
    let mut gw = Gateway::start(&[&up], rest, &[], &["a"]);
    gw.stop();
    let db = gw.dir.path().join("airlock-data/airlock.db");
    let before = python(DUMP, &[&db.to_string_lossy()]);
    let wrong = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let o = airlock(&gw.config, &["serve"], None, &[("AIRLOCK_MASTER_KEY", wrong)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("wrong master key"), "{}", text(&o));
    assert!(
        python(DUMP, &[&db.to_string_lossy()]) == before,
        "the vault was modified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_master_key_still_injects_and_old_key_is_refused() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], ONE_SECRET, &[("k", REAL)], &["a"]);
    gw.stop();
    let key_path = gw.dir.path().join("airlock-data/master.key");
    let old = std::fs::read_to_string(&key_path).unwrap();
    let o = gw.cli(&["vault", "rotate-key"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(std::fs::read_to_string(&key_path).unwrap(), old);
    let o = airlock(
        &gw.config,
        &["secret", "list"],
        None,
        &[("AIRLOCK_MASTER_KEY", old.trim())],
    );
    assert!(text(&o).contains("wrong master key"), "{}", text(&o));
    gw.serve(&[]);
    gw.assert_injects(&up, REAL).await;
}

/// Every row of the secrets, agents and audit tables.
const DUMP: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for t in ["secrets", "agents", "audit_records", "meta"]:
    print(t, db.execute(f"select * from {t} order by 1").fetchall())
"#;

const TAMPER: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for (name,) in db.execute("select name from sqlite_master where type='trigger'").fetchall():
    db.execute(f"drop trigger {name}")
mode = sys.argv[2]
if mode == "edit":
    db.execute("update audit_records set body = cast(replace(cast(body as text), 'deny', 'allo') as blob) where seq = 2")
elif mode == "delete":
    db.execute("delete from audit_records where seq = 2")
elif mode == "reorder":
    db.execute("update audit_records set seq = 1000002 where seq = 2")
    db.execute("update audit_records set seq = 2 where seq = 3")
    db.execute("update audit_records set seq = 3 where seq = 1000002")
db.commit()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_detects_edit_deletion_and_reordering() {
    for mode in ["edit", "delete", "reorder"] {
        let up = upstream(true).await;
        let rest = "[[agents]]\nname = \"a\"\nsecrets = []\n[[rules]]\nname = \"no\"\nhosts = [\"localhost\"]\naction = \"deny\"\n";
        let mut gw = Gateway::start(&[&up], rest, &[], &["a"]);
        let c = gw.client("a");
        for i in 0..5 {
            let r = c
                .get(format!("https://localhost:{}/{i}", up.port))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403);
        }
        gw.stop();
        let o = gw.cli(&["audit", "verify"]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("5 records"), "{}", text(&o));
        let db = gw.dir.path().join("airlock-data/airlock.db");
        let (ok, out) = python(TAMPER, &[&db.to_string_lossy(), mode]);
        assert!(ok, "{out}");
        let o = gw.cli(&["audit", "verify"]);
        assert!(!o.status.success(), "{mode}: tampering not detected");
        assert!(
            text(&o).contains("record 2") || text(&o).contains("record 3"),
            "{mode}: {}",
            text(&o)
        );
    }
}

/// `airlock --help` gives each command its own one-line description (a doc comment once sat on
/// the wrong variant: `status` read as the demo and `demo` had none).
#[test]
fn help_describes_each_command_on_its_own_line() {
    let o = std::process::Command::new(BIN).arg("--help").output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    let line = |cmd: &str| {
        help.lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("no {cmd} in:\n{help}"))
            .to_string()
    };
    assert!(line("demo").contains("one-minute tour"), "{help}");
    assert!(line("status").contains("running gateway"), "{help}");
    assert!(!line("status").contains("tour"), "{help}");
    for l in help.lines().skip_while(|l| !l.starts_with("Commands:")).skip(1) {
        if l.trim().is_empty() {
            break;
        }
        assert!(l.trim().contains(' '), "a command without a description: {l}");
    }
}
