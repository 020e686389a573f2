//! Policy evaluation cost as the rule count grows (10, 1,000 and 10,000 rules), and the
//! placeholder scan every request passes through.
//!
//! The policies look like real ones: N rules spread over N/4 exact hosts, some `*.example.com`
//! wildcard rules, a few host-less rules, mixed methods, path globs, header and query matchers
//! and two JSON body matchers. The last rule is the one the "match" request hits, so a linear
//! scan would pay for every rule before it; the host index should make that irrelevant.
//!
//! Run: `cargo bench -p airlock-core --bench policy`.

#[path = "../tests/common/mod.rs"]
mod common;

use airlock_core::facts::{Body, BodyFacts, RequestFacts};
use airlock_core::glob::{Glob, HostPattern};
use airlock_core::policy::{Action, BodyMatcher, JsonCond, JsonExpect, Policy, Rule};
use common::{facts, rule, with_paths};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

const METHODS: &[&[&str]] = &[
    &["GET"],
    &["GET", "HEAD"],
    &["POST"],
    &["POST", "PATCH"],
    &["PUT"],
    &["DELETE"],
    &[],
];
const ACTIONS: [Action; 3] = [Action::Allow, Action::Approve, Action::Deny];
const TARGET: &str = "github issue writes";

/// The i-th of `hosts` distinct exact hosts; host 0 is the one the matching request targets.
fn exact_host(i: usize) -> String {
    if i == 0 {
        "api.github.com".to_string()
    } else {
        format!("api{i}.svc{}.internal", i % 10)
    }
}

fn paths_for(i: usize) -> Vec<String> {
    match i % 5 {
        0 => vec!["/repos/*/issues/**".into()],
        1 => vec![format!("/v{}/items/*", i % 9), format!("/v{}/items/*/tags", i % 9)],
        2 => vec!["/api/**".into()],
        3 => vec!["/users/*/messages/send".into(), "/users/*/drafts/?".into()],
        _ => vec![],
    }
}

fn json_body(force: bool) -> BodyMatcher {
    BodyMatcher::Json(vec![
        JsonCond {
            pointer: "/force".into(),
            value: JsonExpect::Exact(serde_json::Value::Bool(force)),
        },
        JsonCond {
            pointer: "/action".into(),
            value: JsonExpect::Glob(Glob::text("deploy*")),
        },
    ])
}

/// A filler rule: every condition kind appears, cycled by index.
fn filler(i: usize, n: usize) -> Rule {
    let hosts = (n / 4).max(1);
    let action = ACTIONS[i % 3];
    let name = format!("rule {i}");
    // A few host-less rules, a sprinkling of wildcard ones, exact hosts for the rest.
    if n >= 100 && [n / 4 + 1, n / 2 + 1, 3 * n / 4 + 1].contains(&i) {
        let mut r = with_paths(rule(&name, "*", &["DELETE"], Action::Deny), &["/admin/**"]);
        r.hosts.clear();
        r.headers = vec![("x-env".into(), Glob::text("prod-*"))];
        return r;
    }
    if i % 16 == 5 {
        let host = if i % 32 == 5 {
            "*.example.com".to_string()
        } else {
            format!("*.r{}.example.com", i % 8)
        };
        return with_paths(
            rule(&name, &host, &["POST", "PUT"], action),
            &["/repos/*/issues/**", "/v1/**"],
        );
    }
    let mut r = rule(&name, &exact_host(i % hosts), METHODS[i % METHODS.len()], action);
    r.paths = paths_for(i).iter().map(|p| Glob::path(p)).collect();
    if i % 7 == 3 {
        r.headers = vec![("x-env".into(), Glob::text("prod-*"))];
    }
    if i % 11 == 4 {
        r.query = vec![("state".into(), Glob::text("open*"))];
    }
    if n >= 4 && (i == n / 2 || i == n - 2) {
        r.body = Some(json_body(true));
        r.action = Action::Deny;
    }
    r
}

/// `n` rules; the last is the one [`matching_request`] hits.
fn policy(n: usize) -> Policy {
    let mut rules: Vec<Rule> = (0..n - 1).map(|i| filler(i, n)).collect();
    let mut target = with_paths(
        rule(TARGET, "api.github.com", &["POST", "PATCH"], Action::Approve),
        &["/repos/*/*/issues/**"],
    );
    target.headers = vec![("accept".into(), Glob::text("application/vnd.github*"))];
    rules.push(target);
    assert_eq!(rules.len(), n);
    Policy::new(Action::Deny, rules)
}

fn with_headers(mut f: RequestFacts, headers: &[(&str, &str)]) -> RequestFacts {
    f.headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    f
}

/// Hits the last rule: exact host shared with three other rules, glob path, header matcher,
/// a parsed JSON body for the body matchers to read.
fn matching_request() -> RequestFacts {
    let mut f = with_headers(
        facts(
            "POST",
            "api.github.com",
            "/repos/airlock/airlock/issues/42/comments?per_page=100",
        ),
        &[
            ("accept", "application/vnd.github+json"),
            ("content-type", "application/json"),
            ("user-agent", "claude-code/1.0"),
            ("x-env", "staging"),
        ],
    );
    f.body = Body::Inspected(BodyFacts {
        json: vec![serde_json::json!({"body": "LGTM", "force": false, "action": "comment"})],
        ..BodyFacts::default()
    });
    f
}

/// An exact host with rules, but nothing about the request matches them: the default applies.
fn unmatched_request(n: usize) -> RequestFacts {
    let host = exact_host((n / 4).max(1) / 2 + 1);
    with_headers(
        facts("OPTIONS", &host, "/nothing/here?state=closed"),
        &[("user-agent", "claude-code/1.0"), ("x-env", "staging")],
    )
}

/// A subdomain every `*.example.com` rule is a candidate for; none matches.
fn wildcard_request() -> RequestFacts {
    with_headers(
        facts("GET", "deep.r3.example.com", "/repos/a/issues/1"),
        &[("user-agent", "claude-code/1.0")],
    )
}

fn evaluate(c: &mut Criterion) {
    for n in [10usize, 1_000, 10_000] {
        let p = policy(n);
        let hit = matching_request();
        let miss = unmatched_request(n);
        let wild = wildcard_request();
        // The benchmarks measure what they claim to.
        let d = p.evaluate(&hit);
        assert_eq!(d.rule.as_deref(), Some(TARGET), "{n} rules: {d:?}");
        assert_eq!(d.action, Action::Approve);
        let d = p.evaluate(&miss);
        assert!(d.rule.is_none(), "{n} rules: {d:?}");
        assert!(p.evaluate(&wild).rule.is_none());

        let mut g = c.benchmark_group(format!("evaluate/{n}"));
        g.bench_function("match_last_rule", |b| b.iter(|| p.evaluate(black_box(&hit))));
        g.bench_function("no_match_default", |b| b.iter(|| p.evaluate(black_box(&miss))));
        g.bench_function("no_match_wildcard_host", |b| b.iter(|| p.evaluate(black_box(&wild))));
        g.finish();
    }
}

fn body_needs(c: &mut Criterion) {
    let p = policy(10_000);
    let hit = matching_request();
    let body_host = {
        // The host of the mid-policy JSON body rule: its needs come back set.
        let i = 10_000 / 2;
        let host = exact_host(i % (10_000 / 4));
        let HostPattern::Exact(h) = &p.rules[i].hosts[0] else {
            unreachable!("rule {i} has an exact host")
        };
        assert_eq!(h, &host);
        let paths = paths_for(i);
        let path = paths.first().map_or("/anything", |p| p.as_str()).replace('*', "x");
        let methods = METHODS[i % METHODS.len()];
        facts(methods.first().copied().unwrap_or("POST"), &host, &path)
    };
    assert!(!p.body_needs(&hit).any());
    assert!(p.body_needs(&body_host).json, "{body_host:?}");

    let mut g = c.benchmark_group("body_needs/10000");
    g.bench_function("none_needed", |b| b.iter(|| p.body_needs(black_box(&hit))));
    g.bench_function("json_needed", |b| b.iter(|| p.body_needs(black_box(&body_host))));
    g.finish();
}

/// The injection plan over a typical request: 20 declared secrets, a dozen headers, a 4 KiB body.
fn placeholder_scan(c: &mut Criterion) {
    use airlock_core::facts::Scheme;
    use airlock_core::inject::{RequestView, SecretDecl, SecretIndex, Slot};
    let decls = (0..20)
        .map(|i| SecretDecl {
            name: format!("s{i}"),
            hosts: vec![HostPattern::parse(&format!("api{i}.example.com")).expect("host")],
            slot: Slot::Header("authorization".into()),
            format: "Bearer {secret}".into(),
            placeholder: format!("airlock-placeholder-s{i}"),
            env: None,
            allow_http: false,
        })
        .collect();
    let index = SecretIndex::new(decls);
    let granted = vec!["s3".to_string()];
    let names = [
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "content-type",
        "content-length",
        "x-request-id",
        "x-github-api-version",
        "traceparent",
        "cookie",
        "origin",
        "referer",
    ];
    let values: Vec<String> = names.iter().map(|n| format!("value of {n} 0123456789abcdef")).collect();
    let mut headers: Vec<(&str, &[u8])> = names.iter().zip(&values).map(|(n, v)| (*n, v.as_bytes())).collect();
    headers.push(("authorization", b"Bearer airlock-placeholder-s3"));
    let body = "{\"text\": \"lorem ipsum dolor sit amet\"} ".repeat(128);
    let view = RequestView {
        scheme: Scheme::Https,
        host: "api3.example.com",
        target: "/repos/airlock/airlock/issues?state=open&per_page=100",
        headers: &headers,
        body: Some(body.as_bytes()),
    };
    assert_eq!(index.plan(&granted, &view).expect("plan").len(), 1);
    c.bench_function("placeholder_scan/20_secrets_4k_body", |b| {
        b.iter(|| index.plan(black_box(&granted), black_box(&view)))
    });
}

criterion_group!(benches, evaluate, body_needs, placeholder_scan);
criterion_main!(benches);
