//! Invariant 12 as a property: for any policy and any request, a respelling that a server behind
//! airlock reads as the same request (a lower-case method, a matrix parameter, a trailing slash,
//! a format suffix, a percent-escape, a dot-segment, another case, a numeric host, a repeated or
//! re-cased JSON key, SQL comments) gets the same decision or a more restrictive one.

use airlock_core::facts::{Scheme, SqlClass};
use airlock_core::glob::{Glob, HostPattern};
use airlock_core::policy::{Action, BodyMatcher, JsonCond, JsonExpect, Policy, Rule};
use airlock_inspect::request::{Head, request_facts};
use proptest::prelude::*;

const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "PUT"];
const SEGMENTS: [&str; 5] = ["a", "b", "send", "x", "Send"];
const GLOBS: [&str; 6] = ["/send", "/a/**", "/a/*/send", "/x/send", "/Send", "/**/send"];
const SQL: [&str; 5] = [
    "SELECT 1",
    "DROP TABLE t",
    "DELETE FROM t",
    "SELECT 1; DROP TABLE t",
    "UPDATE t SET a = 1",
];
const ACTIONS: [&str; 3] = ["status", "deploy", "noop"];

fn rank(a: Action) -> u8 {
    match a {
        Action::Allow => 0,
        Action::Approve => 1,
        Action::Deny => 2,
    }
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    (
        0..3usize,
        proptest::sample::subsequence(METHODS.to_vec(), 0..3),
        proptest::sample::subsequence(GLOBS.to_vec(), 0..2),
        0..4usize,
        proptest::sample::subsequence(vec![SqlClass::Read, SqlClass::Write, SqlClass::Ddl], 1..3),
        0..3usize,
    )
        .prop_map(|(action, methods, paths, body, sql, json)| Rule {
            name: "r".into(),
            hosts: vec![HostPattern::parse("127.0.0.1").expect("host")],
            methods: methods.iter().map(|m| m.to_string()).collect(),
            paths: paths.iter().map(|p| Glob::path(p)).collect(),
            agents: vec![],
            query: vec![],
            headers: vec![],
            body: match body {
                1 => Some(BodyMatcher::Sql(sql)),
                2 => Some(BodyMatcher::Json(vec![JsonCond {
                    pointer: "/action".into(),
                    value: JsonExpect::Glob(Glob::text(ACTIONS[json])),
                }])),
                _ => None,
            },
            action: [Action::Allow, Action::Approve, Action::Deny][action],
            reason: None,
            rate: None,
            approval: None,
        })
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (proptest::collection::vec(rule_strategy(), 1..6), any::<bool>()).prop_map(|(mut rules, open)| {
        for (i, r) in rules.iter_mut().enumerate() {
            r.name = format!("rule {i}");
        }
        Policy::new(if open { Action::Allow } else { Action::Deny }, rules)
    })
}

/// A request: method, path segments, body kind (0 none, 1 SQL, 2 JSON) and its choice.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    host: String,
    segments: Vec<String>,
    headers: Vec<(String, String)>,
    content_type: Option<&'static str>,
    body: String,
}

fn request_strategy() -> impl Strategy<Value = Req> {
    (
        0..METHODS.len(),
        proptest::collection::vec(0..SEGMENTS.len(), 1..4),
        0..3usize,
        0..SQL.len(),
        0..ACTIONS.len(),
    )
        .prop_map(|(m, segs, kind, sql, action)| {
            let (content_type, body) = match kind {
                1 => (Some("application/sql"), SQL[sql].to_string()),
                2 => (
                    Some("application/json"),
                    format!(r#"{{"action":"{}"}}"#, ACTIONS[action]),
                ),
                _ => (None, String::new()),
            };
            Req {
                method: METHODS[m].to_string(),
                host: "127.0.0.1".into(),
                segments: segs.iter().map(|i| SEGMENTS[*i].to_string()).collect(),
                headers: vec![],
                content_type,
                body,
            }
        })
}

/// One respelling a server reads as the same request; `pick` chooses where it applies.
fn respell(r: &Req, how: usize, pick: usize) -> Req {
    let mut r = r.clone();
    let n = r.segments.len();
    let i = pick % n;
    match how {
        0 => r.method = r.method.to_ascii_lowercase(),
        1 => r.segments[i].push_str(";p=1"),
        2 => r.segments.push(String::new()),
        3 if !r.segments[n - 1].is_empty() && !r.segments[n - 1].contains(['.', ';', '%']) => {
            r.segments[n - 1].push_str(".json")
        }
        4 if !r.segments[i].is_empty() => {
            // Percent-encode one character of a segment.
            let s = &r.segments[i];
            let c = s.as_bytes()[pick % s.len()];
            let at = pick % s.len();
            r.segments[i] = format!("{}%{c:02X}{}", &s[..at], &s[at + 1..]);
        }
        5 => r.segments.insert(i, ".".into()),
        6 => {
            r.segments.insert(i, "..".into());
            r.segments.insert(i, "zz".into());
        }
        7 => r.segments[i] = r.segments[i].to_ascii_uppercase(),
        8 => r.host = "2130706433".into(),
        9 => r.headers.push(("x-http-method-override".into(), r.method.clone())),
        10 if r.content_type == Some("application/json") => {
            // The same key again, with the same value; or the key in another case.
            r.body = if pick.is_multiple_of(2) {
                r.body.replacen('}', &format!(",{}", &r.body[1..]), 1)
            } else {
                r.body.replace("\"action\"", "\"Action\"")
            };
        }
        11 if r.content_type == Some("application/sql") => r.body = format!("/* note */ {} ;", r.body),
        _ => r.segments.insert(i, String::new()),
    }
    r
}

fn decide(p: &Policy, r: &Req) -> Option<Action> {
    let host = airlock_core::host::canonical_host(&r.host).ok()?;
    let target = format!("/{}", r.segments.join("/"));
    let mut hv: Vec<(&str, &[u8])> = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    if let Some(ct) = r.content_type {
        hv.push(("content-type", ct.as_bytes()));
    }
    let head = Head {
        agent: "bot",
        method: &r.method,
        scheme: Scheme::Https,
        host: &host,
        port: 443,
        target: &target,
        headers: &hv,
        keep_headers: true,
    };
    let facts = request_facts(&head, p, r.body.as_bytes()).ok()?;
    Some(p.evaluate(&facts).action)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_respelling_is_never_less_restrictive(
        p in policy_strategy(),
        r in request_strategy(),
        hows in proptest::collection::vec((0..13usize, 0..64usize), 1..4),
    ) {
        let original = decide(&p, &r).expect("the original request is readable");
        let mut spelled = r.clone();
        for (how, pick) in hows {
            spelled = respell(&spelled, how, pick);
        }
        // A respelling may also be refused outright (400): more restrictive still.
        if let Some(after) = decide(&p, &spelled) {
            prop_assert!(
                rank(after) >= rank(original),
                "{r:?} → {original:?}, but respelled {spelled:?} → {after:?}"
            );
        }
    }
}
