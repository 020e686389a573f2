//! `[databases.*]`, `[[agents]] databases`, database rules (`databases` + top-level `sql`) and
//! `gateway.postgres_listen`: read into their own policy, every mistake named by file:line:key.

use std::path::Path;

use airlock_config::{Config, ConfigError, DatabaseKind, DbChannelBinding, DbTls, SecretRef};
use airlock_core::facts::{Body, BodyFacts, RequestFacts, Scheme, SqlClass};
use airlock_core::policy::Action;

const GOOD: &str = r#"
[gateway]
postgres_listen = "127.0.0.1:6543"

[databases.prod]
kind = "postgres"
upstream = "db.internal:5432"
database = "app"
user = "app_rw"
password = "vault:prod-db"
channel_binding = "require"
ca = "certs/db-ca.pem"
placeholder = "airlock-db-prod"

[databases.local]
kind = "postgres"
upstream = "127.0.0.1:5432"
database = "scratch"
user = "me"
password = "env:LOCAL_DB_PASSWORD"
tls = "disable"

[[agents]]
name = "analyst"
databases = ["prod", "local"]

[[rules]]
name = "reads are fine"
databases = ["prod"]
sql = ["read"]
action = "allow"

[[rules]]
name = "schema changes need a senior engineer"
databases = ["prod"]
sql = ["ddl", "role"]
action = "approve"
approvers = ["senior-engineer"]

[[rules]]
name = "http reads"
hosts = ["api.example.com"]
action = "allow"
"#;

fn statement(db: &str, classes: Vec<SqlClass>) -> RequestFacts {
    let mut f = RequestFacts::new("analyst", "SQL", Scheme::Https, db, 0, "/");
    f.body = Body::Inspected(BodyFacts {
        sql: classes,
        ..BodyFacts::default()
    });
    f
}

#[test]
fn databases_rules_and_listener_are_read() {
    let c = Config::parse(GOOD, Path::new("/etc/airlock/airlock.toml")).expect("valid");
    assert_eq!(c.gateway.postgres_listen, Some("127.0.0.1:6543".parse().unwrap()));
    let prod = &c.databases.iter().find(|d| d.name == "prod").unwrap();
    assert_eq!(prod.kind, DatabaseKind::Postgres);
    assert_eq!((prod.host.as_str(), prod.port), ("db.internal", 5432));
    assert_eq!((prod.database.as_str(), prod.user.as_str()), ("app", "app_rw"));
    assert_eq!(prod.password, SecretRef::Vault("prod-db".into()));
    assert_eq!(prod.tls, DbTls::VerifyFull);
    assert_eq!(prod.channel_binding, DbChannelBinding::Require);
    assert_eq!(prod.ca.as_deref(), Some(Path::new("/etc/airlock/certs/db-ca.pem")));
    let local = &c.databases.iter().find(|d| d.name == "local").unwrap();
    assert_eq!(local.tls, DbTls::Disable);
    assert_eq!(local.channel_binding, DbChannelBinding::Prefer, "libpq's default");
    assert_eq!(local.placeholder, "airlock-db-local");
    assert_eq!(c.agent("analyst").unwrap().databases, vec!["prod", "local"]);
    // A vault entry referenced only as vault:NAME needs no [secrets.NAME] block.
    assert!(c.secrets.decls.is_empty());

    // Database rules live in their own policy: HTTP requests never meet them, nor statements HTTP rules.
    assert_eq!(c.policy.rules.len(), 1);
    assert_eq!(c.database_policy.rules.len(), 2);
    let p = &c.database_policy;
    assert_eq!(
        p.evaluate(&statement("prod", vec![SqlClass::Read])).action,
        Action::Allow
    );
    assert_eq!(
        p.evaluate(&statement("prod", vec![SqlClass::Ddl])).action,
        Action::Approve
    );
    assert_eq!(
        p.evaluate(&statement("prod", vec![SqlClass::Ddl, SqlClass::Role]))
            .action,
        Action::Approve
    );
    // A read hiding a role change is not a plain read.
    assert_eq!(
        p.evaluate(&statement("prod", vec![SqlClass::Read, SqlClass::Role]))
            .action,
        Action::Approve
    );
    assert_eq!(
        p.evaluate(&statement("prod", vec![SqlClass::Write])).action,
        Action::Deny
    );
    assert_eq!(
        p.evaluate(&statement("local", vec![SqlClass::Read])).action,
        Action::Deny
    );
    let mut unparsed = statement("prod", vec![SqlClass::Other]);
    if let Body::Inspected(b) = &mut unparsed.body {
        b.sql_unparsed = true;
    }
    assert_ne!(p.evaluate(&unparsed).action, Action::Allow, "unparseable never allowed");
    let http = RequestFacts::new("analyst", "GET", Scheme::Https, "prod", 443, "/");
    assert_eq!(c.policy.evaluate(&http).action, Action::Deny);
}

#[test]
fn the_listener_is_off_by_default() {
    let c = Config::parse("", Path::new("airlock.toml")).expect("valid");
    assert_eq!(c.gateway.postgres_listen, None);
    assert!(c.databases.is_empty());
}

/// (source, line, key path, piece of the message)
const BAD: &[(&str, usize, &str, &str)] = &[
    (
        "[databases.x]\nkind = \"mysql\"\nupstream = \"h:1\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"",
        2,
        "databases.x.kind",
        "unknown kind \"mysql\"",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"h\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"",
        3,
        "databases.x.upstream",
        "expected HOST:PORT",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"h:1\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"hunter2\"",
        6,
        "databases.x.password",
        "must be \"env:NAME\" or \"vault:NAME\"",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"10.0.0.5:5432\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"\ntls = \"disable\"",
        7,
        "databases.x.tls",
        "only toward this machine",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"h:1\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"\ntls = \"prefer\"",
        7,
        "databases.x.tls",
        "unknown tls \"prefer\"",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"h:1\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"\nchannel_binding = \"always\"",
        7,
        "databases.x.channel_binding",
        "unknown channel_binding \"always\"",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"127.0.0.1:5432\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"\ntls = \"disable\"\nchannel_binding = \"require\"",
        8,
        "databases.x.channel_binding",
        "needs TLS toward the database",
    ),
    (
        "[[agents]]\nname = \"a\"\ndatabases = [\"nope\"]",
        3,
        "agents[0].databases[0]",
        "database \"nope\" is not declared",
    ),
    (
        "[[rules]]\nname = \"r\"\ndatabases = [\"nope\"]\naction = \"allow\"",
        3,
        "rules[0].databases[0]",
        "database \"nope\" is not declared",
    ),
    (
        "[[rules]]\nname = \"r\"\nhosts = [\"a.com\"]\nsql = [\"read\"]\naction = \"allow\"",
        4,
        "rules[0].sql",
        "an HTTP rule uses body = { sql = [...] }",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"h:1\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"\n[[rules]]\nname = \"r\"\ndatabases = [\"x\"]\npaths = [\"/a\"]\naction = \"allow\"",
        10,
        "rules[0].paths",
        "not valid on a database rule",
    ),
    (
        "[databases.x]\nkind = \"postgres\"\nupstream = \"h:1\"\ndatabase = \"d\"\nuser = \"u\"\npassword = \"env:P\"\n[[rules]]\nname = \"r\"\ndatabases = [\"x\"]\nsql = [\"reads\"]\naction = \"allow\"",
        10,
        "rules[0].sql[0]",
        "unknown SQL class \"reads\"",
    ),
    (
        "[gateway]\nlisten = \"127.0.0.1:7000\"\npostgres_listen = \"127.0.0.1:7000\"",
        3,
        "gateway.postgres_listen",
        "already another gateway listener",
    ),
];

#[test]
fn mistakes_are_named_by_line_and_key() {
    for (src, line, key, msg) in BAD {
        let errors = match Config::parse(src, Path::new("airlock.toml")) {
            Err(ConfigError::Invalid { errors }) => errors,
            other => panic!("expected errors for:\n{src}\ngot {other:?}"),
        };
        assert!(
            errors
                .iter()
                .any(|e| e.line == Some(*line) && e.key.to_string() == *key && e.message.contains(msg)),
            "{src}\n→ {errors:#?}"
        );
        let shown = errors.iter().map(|e| e.to_string()).collect::<String>();
        assert!(!shown.contains("hunter2"), "a pasted password is never echoed: {shown}");
    }
}
