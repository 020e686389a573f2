//! Good configurations load into the core's types.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use airlock_config::{AddrRule, Agent, Config, ConfigError, EXAMPLE, SecretRef};
use airlock_core::glob::{Glob, HostPattern};
use airlock_core::inject::{SecretDecl, Slot};
use airlock_core::policy::{Action, ApprovalSpec, BodyMatcher, JsonCond, JsonExpect, Rate, Rule};

/// The example from the issue, comments removed. Its approve-only keys sit on an approve rule.
const ISSUE: &str = r#"
[gateway]
listen = "127.0.0.1:3128"
control = "127.0.0.1:3129"
default = "deny"
data_dir = "./airlock-data"
allow_private = []
upstream_ca = []

[[agents]]
name = "mailbot"
secrets = ["gmail"]

[secrets.gmail]
hosts = ["gmail.googleapis.com"]
header = "Authorization"
format = "Bearer {secret}"
placeholder = "airlock-gmail"
env = "GMAIL_TOKEN"
allow_http = false

[[rules]]
name = "gmail reads"
hosts = ["gmail.googleapis.com"]
methods = ["GET"]
paths = ["/gmail/v1/**"]
agents = ["mailbot"]
query = { key = "glob" }
headers = { "X-Env" = "prod-*" }
body = { json = { "/action" = "deploy" } }
action = "ACTION"
reason = "text shown to the agent"
rate = "60/min"
approvers = ["owner"]
quorum = 1
timeout = "5m"
grant = "15m"
"#;

fn parse(src: &str) -> Result<Config, ConfigError> {
    Config::parse(src, Path::new("/etc/airlock/airlock.toml"))
}

#[test]
fn example_parses() {
    let c = parse(EXAMPLE).unwrap_or_else(|e| panic!("EXAMPLE does not parse:\n{e}"));
    assert_eq!(c.gateway.default, Action::Deny);
    assert_eq!(c.policy.default, Action::Deny);
    assert!(c.policy.rules.len() >= 8);
    assert_eq!(c.secrets.decls.len(), 2);
    assert!(c.agent("coder").is_some_and(|a| a.secrets == ["github"]));
    assert!(c.agent("nobody").is_none());
    // Every kind of body matcher and action is shown.
    let bodies: Vec<_> = c.policy.rules.iter().filter_map(|r| r.body.as_ref()).collect();
    assert!(bodies.iter().any(|b| matches!(b, BodyMatcher::Json(_))));
    assert!(bodies.iter().any(|b| matches!(b, BodyMatcher::Graphql { .. })));
    assert!(bodies.iter().any(|b| matches!(b, BodyMatcher::JsonRpc { .. })));
    assert!(bodies.iter().any(|b| matches!(b, BodyMatcher::Sql(_))));
    for a in [Action::Allow, Action::Deny, Action::Approve] {
        assert!(c.policy.rules.iter().any(|r| r.action == a));
    }
}

#[test]
fn issue_example_parses_into_the_core_types() {
    let c = parse(&ISSUE.replace("ACTION", "approve")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.path, PathBuf::from("/etc/airlock/airlock.toml"));
    assert_eq!(c.dir, PathBuf::from("/etc/airlock"));
    let g = &c.gateway;
    assert_eq!(g.listen, "127.0.0.1:3128".parse::<SocketAddr>().unwrap());
    assert_eq!(g.control, "127.0.0.1:3129".parse::<SocketAddr>().unwrap());
    assert_eq!(g.default, Action::Deny);
    assert_eq!(g.data_dir, PathBuf::from("/etc/airlock/airlock-data"));
    assert!(g.allow_private.is_empty() && g.upstream_ca.is_empty());
    assert_eq!(
        c.agents,
        vec![Agent {
            name: "mailbot".into(),
            secrets: vec!["gmail".into()],
            databases: vec![],
        }]
    );
    assert_eq!(
        c.secrets.decls,
        vec![SecretDecl {
            name: "gmail".into(),
            hosts: vec![HostPattern::Exact("gmail.googleapis.com".into())],
            slot: Slot::Header("authorization".into()),
            format: "Bearer {secret}".into(),
            placeholder: "airlock-gmail".into(),
            env: Some("GMAIL_TOKEN".into()),
            allow_http: false,
        }]
    );
    assert_eq!(c.secrets.find(b"x airlock-gmail y"), vec![0]);
    assert_eq!(c.policy.default, Action::Deny);
    assert_eq!(
        c.policy.rules,
        vec![Rule {
            name: "gmail reads".into(),
            hosts: vec![HostPattern::Exact("gmail.googleapis.com".into())],
            methods: vec!["GET".into()],
            paths: vec![Glob::path("/gmail/v1/**")],
            agents: vec!["mailbot".into()],
            query: vec![("key".into(), Glob::text("glob"))],
            headers: vec![("x-env".into(), Glob::text("prod-*"))],
            body: Some(BodyMatcher::Json(vec![JsonCond {
                pointer: "/action".into(),
                value: JsonExpect::Glob(Glob::text("deploy")),
            }])),
            action: Action::Approve,
            reason: Some("text shown to the agent".into()),
            rate: Some(Rate {
                count: 60,
                per_secs: 60
            }),
            approval: Some(ApprovalSpec {
                approvers: vec!["owner".into()],
                quorum: 1,
                timeout_secs: 300,
                grant_secs: Some(900),
                defer_secs: None,
            }),
        }]
    );
}

#[test]
fn issue_example_as_written_rejects_approval_keys_on_an_allow_rule() {
    let Err(ConfigError::Invalid { errors }) = parse(&ISSUE.replace("ACTION", "allow")) else {
        panic!("approval keys on an allow rule must be rejected")
    };
    let keys: Vec<String> = errors.iter().map(|e| e.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "rules[0].approvers",
            "rules[0].quorum",
            "rules[0].timeout",
            "rules[0].grant"
        ]
    );
}

#[test]
fn empty_file_is_all_defaults() {
    let c = Config::parse("", Path::new("airlock.toml")).unwrap();
    assert_eq!(c.dir, PathBuf::from("."));
    assert_eq!(c.gateway.listen, "127.0.0.1:3128".parse::<SocketAddr>().unwrap());
    assert_eq!(c.gateway.control, "127.0.0.1:3129".parse::<SocketAddr>().unwrap());
    assert_eq!(c.gateway.default, Action::Deny);
    assert_eq!(c.gateway.data_dir, PathBuf::from("airlock-data"));
    assert!(c.agents.is_empty() && c.policy.rules.is_empty() && c.secrets.decls.is_empty());
    assert!(c.people.is_empty() && c.channels == Default::default());
    assert_eq!(c.approvals.max_body, 1 << 20);
    assert_eq!(c.store.url, None, "SQLite in data_dir unless [store] url is set");
}

#[test]
fn store_url_is_read_and_its_password_kept_out_of_debug_output() {
    let url = "postgresql://airlock:hunter2@db.internal:5432/airlock?sslmode=require";
    let c = parse(&format!("[store]\nurl = {url:?}\n")).unwrap();
    assert_eq!(c.store.url.as_deref(), Some(url));
    let shown = format!("{c:?}");
    assert!(
        shown.contains("postgresql://…") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(parse("[store]\n").unwrap().store.url.is_none());
    assert_eq!(
        parse("[store]\n").unwrap().store.lease_secs,
        10,
        "the default replica lease"
    );
    assert_eq!(parse("[store]\nlease = \"1m30s\"\n").unwrap().store.lease_secs, 90);
}

#[test]
fn body_kinds_slots_and_values() {
    let src = r#"
[gateway]
default = "allow"
allow_private = ["10.0.0.5", "10.0.0.6:5432", "fd00::/8"]
data_dir = "/var/lib/airlock"

[secrets.a]
hosts = ["*.Example.com"]
query = "api_key"
allow_http = true
[secrets.b]
hosts = ["10.0.0.6"]
basic_user = "svc"
placeholder = "bbbbbbbbbbbb"

[[rules]]
name = "j"
methods = ["post"]
body = { json = { "/n" = 3, "/f" = 1.5, "/b" = false, "/arr" = [1, "x"], "/obj" = { k = "v" }, "" = "*" } }
action = "deny"
[[rules]]
name = "g"
hosts = ["*"]
body = { graphql = { name = "deleteIssue" } }
action = "deny"
[[rules]]
name = "r"
body = { jsonrpc = { method = "tools/*" } }
action = "allow"
[[rules]]
name = "s"
paths = ["*"]
body = { sql = ["read", "write", "other"] }
action = "allow"

[people.alice]
roles = ["owner"]
slack = "U012ABCDEF"
telegram = "123456789"
discord = "80351110224678912"
[channels.discord]
bot_token = "vault:discord_bot"
public_key = "D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F707511A"
[channels.slack]
bot_token = "env:SLACK_BOT_TOKEN"
app_token = "vault:slack_app"
[channels.webhook]
url = "https://approvals.example.com/hook"
secret = "env:WEBHOOK_SECRET"
[approvals]
max_body = 2048
channels = ["slack"]
"#;
    let c = Config::parse(src, Path::new("conf/airlock.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.gateway.default, Action::Allow);
    assert_eq!(c.policy.default, Action::Allow);
    assert_eq!(c.gateway.data_dir, PathBuf::from("/var/lib/airlock"));
    assert_eq!(
        c.gateway.allow_private,
        vec![
            AddrRule::Ip("10.0.0.5".parse().unwrap()),
            AddrRule::IpPort("10.0.0.6:5432".parse().unwrap()),
            AddrRule::Cidr("fd00::".parse().unwrap(), 8)
        ]
    );
    assert!(c.gateway.private_allowed("10.0.0.6:5432".parse().unwrap()));
    assert!(!c.gateway.private_allowed("10.0.0.6:22".parse().unwrap()));
    let a = c.secrets.get("a").unwrap();
    assert_eq!(a.hosts, vec![HostPattern::Suffix(".example.com".into())]);
    assert_eq!(a.slot, Slot::Query("api_key".into()));
    assert_eq!(a.placeholder, "airlock-placeholder-a");
    assert_eq!(a.format, "{secret}");
    assert!(a.allow_http && a.env.is_none());
    assert_eq!(c.secrets.get("b").unwrap().slot, Slot::Basic { user: "svc".into() });

    let r = &c.policy.rules;
    assert_eq!(r[0].methods, ["POST"]);
    let Some(BodyMatcher::Json(conds)) = &r[0].body else {
        panic!()
    };
    let exact = |p: &str| conds.iter().find(|c| c.pointer == p).map(|c| c.value.clone());
    assert_eq!(exact("/n"), Some(JsonExpect::Exact(serde_json::json!(3))));
    assert_eq!(exact("/f"), Some(JsonExpect::Exact(serde_json::json!(1.5))));
    assert_eq!(exact("/b"), Some(JsonExpect::Exact(serde_json::json!(false))));
    assert_eq!(exact("/arr"), Some(JsonExpect::Exact(serde_json::json!([1, "x"]))));
    assert_eq!(exact("/obj"), Some(JsonExpect::Exact(serde_json::json!({"k": "v"}))));
    assert_eq!(exact(""), Some(JsonExpect::Glob(Glob::text("*"))));
    assert_eq!(r[1].hosts, vec![HostPattern::Any]);
    assert_eq!(
        r[1].body,
        Some(BodyMatcher::Graphql {
            operation: None,
            names: vec!["deleteIssue".into()]
        })
    );
    assert_eq!(
        r[2].body,
        Some(BodyMatcher::JsonRpc {
            method: Some(Glob::text("tools/*")),
            tools: vec![]
        })
    );
    assert_eq!(r[3].paths, vec![Glob::path("*")]);
    assert!(matches!(&r[3].body, Some(BodyMatcher::Sql(v)) if v.len() == 3));
    assert!(r.iter().all(|r| r.approval.is_none()));
    assert_eq!(c.people[0].name, "alice");
    assert_eq!(c.people[0].roles, ["owner"]);
    assert_eq!(c.people[0].ids["slack"], "U012ABCDEF");
    assert_eq!(c.people[0].ids["telegram"], "123456789");
    assert_eq!(c.people[0].ids["discord"], "80351110224678912");
    let discord = c.channels.discord.as_ref().unwrap();
    assert_eq!(discord.bot_token, SecretRef::Vault("discord_bot".into()));
    assert!(discord.gateway, "the Gateway is the default");
    assert_eq!(
        discord.public_key.as_deref(),
        Some("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    );
    let slack = c.channels.slack.as_ref().unwrap();
    assert_eq!(slack.bot_token, SecretRef::Env("SLACK_BOT_TOKEN".into()));
    assert_eq!(slack.app_token, Some(SecretRef::Vault("slack_app".into())));
    assert_eq!(
        c.channels.webhook.as_ref().unwrap().url,
        "https://approvals.example.com/hook"
    );
    assert!(c.channels.telegram.is_none());
    assert_eq!(c.approvals.max_body, 2048);
    assert_eq!(c.approvals.channels.as_deref(), Some(&["slack".to_string()][..]));
}

#[test]
fn load_reads_the_file_and_checks_upstream_cas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("airlock.toml");

    let Err(e) = Config::load(&path) else {
        panic!("missing file loaded")
    };
    assert!(matches!(e, ConfigError::NotFound { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("run \"airlock init\""),
        "{msg}"
    );

    std::fs::write(&path, "[gateway]\nupstream_ca = [\"ca/corp.pem\"]\n").unwrap();
    let Err(ConfigError::Invalid { errors }) = Config::load(&path) else {
        panic!("missing CA accepted")
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key.to_string(), "gateway.upstream_ca[0]");
    assert_eq!(errors[0].line, Some(2));
    assert!(
        errors[0].to_string().contains("corp.pem does not exist"),
        "{}",
        errors[0]
    );

    std::fs::create_dir(dir.path().join("ca")).unwrap();
    std::fs::write(dir.path().join("ca/corp.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.gateway.upstream_ca, vec![dir.path().join("ca/corp.pem")]);
    assert_eq!(c.gateway.data_dir, dir.path().join("airlock-data"));

    std::fs::write(&path, b"\xff\xfe not utf-8").unwrap();
    assert!(matches!(Config::load(&path), Err(ConfigError::Read { .. })));
}

#[test]
fn parse_does_not_touch_upstream_ca_files() {
    let c = Config::parse(
        "[gateway]\nupstream_ca = [\"/nonexistent/ca.pem\"]\n",
        Path::new("a.toml"),
    )
    .unwrap();
    assert_eq!(c.gateway.upstream_ca, vec![PathBuf::from("/nonexistent/ca.pem")]);
}

/// `[compat.onecli]` and glob agents: the exact entry wins, else the longest matching glob, and
/// a rule naming a glob applies to every agent it matches.
#[test]
fn onecli_section_and_agent_globs() {
    let src = r#"
[[agents]]
name = "ag-*"
secrets = ["k"]

[[agents]]
name = "ag-admin-*"

[[agents]]
name = "ag-1"

[secrets.k]
hosts = ["api.example.com"]
header = "X-Key"
placeholder = "airlock-k"

[people.host]
roles = ["chat"]

[compat.onecli]
approver = "host"

[[rules]]
name = "nanoclaw agents"
agents = ["ag-*"]
action = "allow"
"#;
    let c = Config::parse(src, Path::new("airlock.toml")).unwrap();
    let onecli = c.onecli.clone().unwrap();
    assert_eq!(onecli.proxy_url, "http://host.docker.internal:3128");
    assert_eq!(onecli.approver.as_deref(), Some("host"));
    assert_eq!(c.agent("ag-1").map(|a| a.name.as_str()), Some("ag-1"));
    assert_eq!(c.agent("ag-17").map(|a| a.name.as_str()), Some("ag-*"));
    assert_eq!(c.agent("ag-admin-3").map(|a| a.name.as_str()), Some("ag-admin-*"));
    assert_eq!(c.agent("zz-1"), None);
    assert_eq!(c.agent("ag-*x*"), None, "a name with a star is never an agent");
    let at = |agent: &str| {
        let f = airlock_core::facts::RequestFacts::new(
            agent,
            "GET",
            airlock_core::facts::Scheme::Https,
            "api.example.com",
            443,
            "/",
        );
        c.policy.evaluate(&f).action
    };
    assert_eq!(at("ag-17"), Action::Allow);
    assert_eq!(at("zz-1"), Action::Deny);
    assert!(Config::parse("", Path::new("airlock.toml")).unwrap().onecli.is_none());
}
