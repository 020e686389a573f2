mod common;
use airlock_core::facts::{Body, BodyFacts, GraphqlOp, JsonRpcCall, SqlClass};
use airlock_core::glob::Glob;
use airlock_core::policy::{Action, BodyMatcher, JsonCond, JsonExpect, Policy, Rate, RateLimiter};
use common::*;

#[test]
fn deny_beats_approve_beats_allow_and_default_applies() {
    let p = Policy::new(
        Action::Deny,
        vec![
            rule("reads", "gmail.googleapis.com", &["GET"], Action::Allow),
            rule("all", "gmail.googleapis.com", &[], Action::Allow),
            rule("send", "gmail.googleapis.com", &["POST"], Action::Approve),
            rule("no deletes", "gmail.googleapis.com", &["DELETE"], Action::Deny),
        ],
    );
    let d = p.evaluate(&facts("GET", "gmail.googleapis.com", "/x"));
    assert_eq!((d.action, d.rule.as_deref()), (Action::Allow, Some("reads")));
    assert_eq!(d.matched, vec![0, 1]);
    let d = p.evaluate(&facts("POST", "gmail.googleapis.com", "/x"));
    assert_eq!((d.action, d.rule.as_deref()), (Action::Approve, Some("send")));
    let d = p.evaluate(&facts("DELETE", "gmail.googleapis.com", "/x"));
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, Some("no deletes")));
    assert!(d.reason.contains("no deletes"));
    let d = p.evaluate(&facts("GET", "evil.example", "/"));
    assert_eq!((d.action, d.rule), (Action::Deny, None));
    assert!(d.reason.contains("default is deny"), "{}", d.reason);
    let open = Policy::new(Action::Allow, vec![]);
    assert_eq!(open.evaluate(&facts("GET", "x", "/")).action, Action::Allow);
}

/// Invariant 12: a decision is the most restrictive over the readings, and a reading no rule
/// matches gets the default, even when another reading triggered an approve rule.
#[test]
fn a_reading_no_rule_matches_gets_the_default_over_an_approve_rule() {
    let approve = with_paths(rule("a", "h", &["DELETE"], Action::Approve), &["/a/**"]);
    let p = Policy::new(Action::Deny, vec![approve.clone()]);
    // `/a/` as sent matches `/a/**`; a server that drops the trailing slash reads `/a`.
    let d = p.evaluate(&also(facts("DELETE", "h", "/a/"), None, Some("/a")));
    assert_eq!((d.action, d.rule.as_deref()), (Action::Deny, None), "{}", d.reason);
    assert!(
        d.reason.contains("rule \"a\" matches") && d.reason.contains("DELETE /a"),
        "{}",
        d.reason
    );
    // Every reading matched by some rule: the approve rule decides.
    let d = p.evaluate(&also(facts("DELETE", "h", "/a/b/"), None, Some("/a/b")));
    assert_eq!((d.action, d.rule.as_deref()), (Action::Approve, Some("a")));
    // An override the approve rule names, on a method no rule covers: still the default.
    let d = p.evaluate(&also(facts("POST", "h", "/a/b"), Some(Some("DELETE")), None));
    assert_eq!(d.action, Action::Deny, "{}", d.reason);
    // An allow rule covering the other reading leaves the approval in place.
    let reads = with_paths(rule("plain", "h", &["DELETE"], Action::Allow), &["/a"]);
    let p = Policy::new(Action::Deny, vec![approve.clone(), reads]);
    let d = p.evaluate(&also(facts("DELETE", "h", "/a/"), None, Some("/a")));
    assert_eq!((d.action, d.rule.as_deref()), (Action::Approve, Some("a")));
    // Under an open default the approve rule stands: the default is not more restrictive.
    let p = Policy::new(Action::Allow, vec![approve]);
    let d = p.evaluate(&also(facts("DELETE", "h", "/a/"), None, Some("/a")));
    assert_eq!(d.action, Action::Approve);
}

#[test]
fn wildcard_hosts_agents_query_and_headers() {
    let mut r = rule("gh", "*.github.com", &[], Action::Allow);
    r.agents = vec!["dev".into()];
    r.query = vec![("ref".into(), Glob::text("main"))];
    r.headers = vec![("x-env".into(), Glob::text("prod-*"))];
    let p = Policy::new(Action::Deny, vec![r]);
    let mut f = facts("GET", "api.github.com", "/r?ref=main");
    f.agent = "dev".into();
    f.headers = vec![("x-env".into(), "prod-eu".into())];
    assert_eq!(p.evaluate(&f).action, Action::Allow);
    let mut g = f.clone();
    g.agent = "other".into();
    assert_eq!(p.evaluate(&g).action, Action::Deny);
    let mut g = f.clone();
    g.query = vec![("ref".into(), "dev".into())];
    assert_eq!(p.evaluate(&g).action, Action::Deny);
    let mut g = f.clone();
    g.headers.clear();
    assert_eq!(p.evaluate(&g).action, Action::Deny);
    let mut g = f;
    g.host = "github.com".into();
    assert_eq!(p.evaluate(&g).action, Action::Deny);
}

fn inspected(b: BodyFacts) -> Body {
    Body::Inspected(b)
}

#[test]
fn body_matchers_and_fail_closed_reading() {
    let mut ddl = rule("no ddl", "db.example.com", &["POST"], Action::Deny);
    ddl.body = Some(BodyMatcher::Sql(vec![SqlClass::Ddl]));
    let mut json = rule("deploys", "db.example.com", &["POST"], Action::Approve);
    json.body = Some(BodyMatcher::Json(vec![JsonCond {
        pointer: "/action".into(),
        value: JsonExpect::Glob(Glob::text("deploy*")),
    }]));
    let mut gql = rule("gql", "db.example.com", &["POST"], Action::Deny);
    gql.body = Some(BodyMatcher::Graphql {
        operation: Some("mutation".into()),
        names: vec!["deleteIssue".into()],
    });
    let mut rpc = rule("mcp", "db.example.com", &["POST"], Action::Approve);
    rpc.body = Some(BodyMatcher::JsonRpc {
        method: Some(Glob::text("tools/call")),
        tools: vec![Glob::text("send_email")],
    });
    let mut reads = rule("reads", "db.example.com", &["POST"], Action::Allow);
    reads.body = Some(BodyMatcher::Sql(vec![SqlClass::Read]));
    let p = Policy::new(Action::Deny, vec![ddl, json, gql, rpc, reads]);

    let mut f = facts("POST", "db.example.com", "/sql");
    let needs = p.body_needs(&f);
    assert!(needs.sql && needs.json && needs.graphql && needs.jsonrpc);

    f.body = inspected(BodyFacts {
        sql: vec![SqlClass::Read],
        ..Default::default()
    });
    assert_eq!(p.evaluate(&f).action, Action::Allow);
    f.body = inspected(BodyFacts {
        sql: vec![SqlClass::Read, SqlClass::Ddl],
        ..Default::default()
    });
    assert_eq!(p.evaluate(&f).rule.as_deref(), Some("no ddl"));
    // Unparsable SQL: the deny rule holds, the allow rule does not.
    f.body = inspected(BodyFacts {
        sql: vec![SqlClass::Other],
        sql_unparsed: true,
        ..Default::default()
    });
    assert_eq!(p.evaluate(&f).rule.as_deref(), Some("no ddl"));
    // Too large to read: restrictive rules apply.
    f.body = Body::TooLarge;
    assert_eq!(p.evaluate(&f).action, Action::Deny);

    f.body = inspected(BodyFacts {
        json: vec![serde_json::json!({"action": "deploy-prod"})],
        ..Default::default()
    });
    assert_eq!(p.evaluate(&f).rule.as_deref(), Some("deploys"));
    f.body = inspected(BodyFacts {
        graphql: vec![GraphqlOp {
            kind: "mutation".into(),
            name: None,
            fields: vec!["deleteIssue".into()],
        }],
        ..Default::default()
    });
    assert_eq!(p.evaluate(&f).rule.as_deref(), Some("gql"));
    f.body = inspected(BodyFacts {
        graphql: vec![GraphqlOp {
            kind: "unparsed".into(),
            name: None,
            fields: vec![],
        }],
        ..Default::default()
    });
    assert_eq!(p.evaluate(&f).rule.as_deref(), Some("gql"));
    f.body = inspected(BodyFacts {
        jsonrpc: vec![JsonRpcCall {
            method: "tools/call".into(),
            tool: Some("send_email".into()),
            tool_unread: false,
        }],
        ..Default::default()
    });
    assert_eq!(p.evaluate(&f).rule.as_deref(), Some("mcp"));
    f.body = Body::Empty;
    assert_eq!(p.evaluate(&f).rule, None);
}

#[test]
fn rate_limits_are_per_rule_and_agent() {
    assert_eq!(
        Rate::parse("60/min"),
        Some(Rate {
            count: 60,
            per_secs: 60
        })
    );
    assert_eq!(Rate::parse("0/min"), None);
    assert_eq!(Rate::parse("5/fortnight"), None);
    let r = Rate::parse("3/s").unwrap();
    // 3/s: one request per 333 ms, bursts of three (the in-memory and the shared limiter's GCRA).
    assert_eq!(r.gcra_ms(), (333, 999));
    assert_eq!(Rate::parse("5/min").unwrap().gcra_ms(), (12_000, 60_000));
    let mut l = RateLimiter::default();
    let now = 1_000_000;
    assert!((0..3).all(|_| l.check(0, "a", r, now)));
    assert!(!l.check(0, "a", r, now));
    assert!(l.check(0, "b", r, now));
    assert!(l.check(1, "a", r, now));
    assert!(l.check(0, "a", r, now + 400));
    l.prune(now + 10_000);
}
