//! The bodies of airlock's fuzz targets, as plain functions: the targets in `fuzz_targets/` are
//! one-line wrappers, and `tests/seeds.rs` runs every function over every committed seed on
//! stable without cargo-fuzz.
//!
//! Each function must not panic on any input. Beyond that, each checks properties the security
//! invariants rest on (DESIGN.md), so a violation shows up as a crash with its input.

mod pg;
pub use pg::{PgEvent, pg_codec, pg_read};

use std::path::Path;
use std::sync::LazyLock;

use airlock_config::Config;
use airlock_core::facts::{Body, RequestFacts, Scheme};
use airlock_core::glob::{Glob, HostPattern};
use airlock_core::inject::{Refusal, RequestView, SecretDecl, SecretIndex, Slot, query_pairs};
use airlock_core::policy::{Action, BodyMatcher, Decision, JsonCond, JsonExpect, Policy, Rule};
use airlock_inspect::request::{body_state, head_facts, plan_body, settle_methods};
use airlock_inspect::target::{path_readings, redact_query, split_target};
use airlock_inspect::{Want, inspect};

/// A request as the gateway would see it, read leniently from arbitrary bytes:
/// `METHOD TARGET VERSION`, header lines, a blank line, the body.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: String,
    /// Path and query, as sent (absolute-form targets are reduced to this).
    pub target: String,
    pub scheme: Scheme,
    /// Canonical: lower-case, no brackets, port or trailing dot.
    pub host: String,
    pub port: u16,
    /// Names lower-case, values as sent (trimmed).
    pub headers: Vec<(String, &'a [u8])>,
    pub body: &'a [u8],
}

impl Head<'_> {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// The Content-Type, when it is text (as the gateway reads it).
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type").and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// The gateway's `canonical_host`; a host it refuses (400) reads as empty here.
fn canonical_host(h: &str) -> String {
    airlock_core::host::canonical_host(h).unwrap_or_default()
}

/// `host[:port]` → (canonical host, port).
fn split_authority(a: &str, default_port: u16) -> (String, u16) {
    let a = a.rsplit_once('@').map_or(a, |(_, h)| h);
    match a.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (canonical_host(h), p.parse().unwrap_or(default_port)),
        _ => (canonical_host(a), default_port),
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b
        && first.is_ascii_whitespace()
    {
        b = rest;
    }
    while let [rest @ .., last] = b
        && last.is_ascii_whitespace()
    {
        b = rest;
    }
    b
}

/// Splits `data` into a request head and body; never fails (missing parts are empty).
pub fn parse_head(data: &[u8]) -> Head<'_> {
    let find = |pat: &[u8]| {
        data.windows(pat.len())
            .position(|w| w == pat)
            .map(|i| (i, i + pat.len()))
    };
    let (head, body): (&[u8], &[u8]) = match find(b"\r\n\r\n").or_else(|| find(b"\n\n")) {
        Some((end, start)) => (&data[..end], &data[start..]),
        None => (data, &[]),
    };
    let mut lines = head.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let mut words = request_line.split_ascii_whitespace();
    let method = words.next().unwrap_or("GET").to_string();
    let raw_target = words.next().unwrap_or("/").to_string();

    let headers: Vec<(String, &[u8])> = lines
        .filter_map(|l| {
            let colon = l.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(trim(&l[..colon])).to_ascii_lowercase();
            Some((name, trim(&l[colon + 1..])))
        })
        .collect();

    // Absolute-form (`http://host/path`, plain-HTTP proxying) names scheme and host itself;
    // origin-form (inside a CONNECT tunnel) takes the host from the Host header.
    let absolute = [("https://", Scheme::Https), ("http://", Scheme::Http)]
        .into_iter()
        .find_map(|(p, s)| raw_target.strip_prefix(p).map(|rest| (rest, s)));
    let (scheme, authority, target) = match absolute {
        Some((rest, scheme)) => {
            let cut = rest.find(['/', '?']).unwrap_or(rest.len());
            let target = match &rest[cut..] {
                "" => "/".to_string(),
                t if t.starts_with('?') => format!("/{t}"),
                t => t.to_string(),
            };
            (scheme, rest[..cut].to_string(), target)
        }
        None => {
            let host = headers
                .iter()
                .find(|(n, _)| n == "host")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            (Scheme::Https, host, raw_target)
        }
    };
    let (host, port) = split_authority(&authority, if scheme == Scheme::Https { 443 } else { 80 });
    Head {
        method,
        target,
        scheme,
        host,
        port,
        headers,
        body,
    }
}

/// `normalize` output: rooted, no empty, `.` or `..` segment (a trailing `/` aside).
fn check_normalized(raw: &str, p: &str) {
    assert!(p.starts_with('/'), "normalize({raw:?}) = {p:?} is not rooted");
    let inner = p.strip_suffix('/').unwrap_or(p);
    for seg in inner.split('/').skip(1) {
        assert!(
            !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'),
            "normalize({raw:?}) = {p:?} keeps segment {seg:?}"
        );
    }
}

/// The audit form of a target keeps its path and no query value (invariant 2).
fn check_redacted(target: &str, red: &str) {
    let (path, _) = target.split_once('?').unwrap_or((target, ""));
    assert!(
        red.starts_with(path),
        "redact_query({target:?}) = {red:?} changed the path"
    );
    if let Some((_, q)) = red.split_once('?') {
        for kv in q.split('&').filter(|kv| !kv.is_empty()) {
            assert!(
                kv.ends_with("=*") && kv.matches('=').count() == 1,
                "redact_query({target:?}) = {red:?} keeps {kv:?}"
            );
        }
    }
}

/// A small fixed index: one header secret, one query secret, one basic-auth secret.
pub static SECRETS: LazyLock<SecretIndex> = LazyLock::new(|| {
    let decl = |name: &str, hosts: &[&str], slot: Slot, format: &str, allow_http: bool| SecretDecl {
        name: name.to_string(),
        hosts: hosts
            .iter()
            .map(|h| HostPattern::parse(h).expect("fixed host"))
            .collect(),
        slot,
        format: format.to_string(),
        placeholder: format!("airlock-placeholder-{name}"),
        env: None,
        allow_http,
    };
    SecretIndex::new(vec![
        decl(
            "github",
            &["api.github.com", "uploads.github.com"],
            Slot::Header("authorization".into()),
            "Bearer {secret}",
            false,
        ),
        decl(
            "maps",
            &["maps.googleapis.com"],
            Slot::Query("key".into()),
            "{secret}",
            true,
        ),
        decl(
            "registry",
            &["*.example.com"],
            Slot::Basic { user: "ci".into() },
            "{secret}",
            false,
        ),
    ])
});

/// The secrets the fuzzed agent is granted (`registry` is not: exercises `NotGranted`).
const GRANTED: &[&str] = &["github", "maps"];

/// Request-head parsing as the gateway derives facts: target split, path normalization,
/// query decoding and redaction, body inspection, and the injection plan.
pub fn request_parse(data: &[u8]) {
    let h = parse_head(data);
    let (raw_path, query) = split_target(&h.target);
    // Every reading is a resolved path; an undecodable one is refused (400) before policy.
    if let Ok(readings) = path_readings(raw_path) {
        assert!(!readings.is_empty() && readings[0].how.is_none());
        for r in &readings {
            check_normalized(raw_path, &r.value);
        }
    }
    check_redacted(&h.target, &redact_query(&h.target));
    let raw_query = h.target.split_once('?').map_or("", |(_, q)| q);
    assert_eq!(query_pairs(raw_query), query, "split_target and query_pairs disagree");

    let _ = inspect(h.content_type(), h.body, &query, Want::ALL);

    check_plan(&h);
}

/// Invariants 3 and 4 on `SecretIndex::plan` for this request.
fn check_plan(h: &Head<'_>) {
    let granted: Vec<String> = GRANTED.iter().map(|s| s.to_string()).collect();
    let headers: Vec<(&str, &[u8])> = h.headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let view = RequestView {
        scheme: h.scheme,
        host: &h.host,
        target: &h.target,
        headers: &headers,
        body: Some(h.body),
    };
    let result = SECRETS.plan(&granted, &view);
    if let Ok(plan) = &result {
        for inj in plan {
            let d = &SECRETS.decls[inj.secret];
            assert!(d.bound_to(&h.host), "{} injected toward unbound {}", d.name, h.host);
            assert!(
                GRANTED.contains(&d.name.as_str()),
                "{} injected but not granted",
                d.name
            );
            assert!(
                h.scheme == Scheme::Https || d.allow_http,
                "{} injected over plain HTTP",
                d.name
            );
            assert_eq!(inj.slot, d.slot);
        }
    }
    // A placeholder seen verbatim where the plan scans raw bytes, toward a host its secret is
    // not bound to, is an exfiltration attempt whatever else the request holds.
    let contains = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    let raw_path = h.target.split_once('?').map_or(h.target.as_str(), |(p, _)| p);
    for d in SECRETS.decls.iter().filter(|d| !d.bound_to(&h.host)) {
        let seen = contains(raw_path.as_bytes(), &d.placeholder)
            || contains(h.body, &d.placeholder)
            || h.headers.iter().any(|(_, v)| contains(v, &d.placeholder));
        if seen {
            assert!(
                matches!(result, Err(Refusal::Exfiltration { .. })),
                "placeholder of {} toward {} not refused: {result:?}",
                d.name,
                h.host
            );
        }
    }
}

/// The policy `policy_eval` evaluates against: the shipped example plus rules using every
/// condition kind the example leaves out (query, host-less, wildcard allow, SQL/GraphQL allows).
pub const POLICY_TOML_EXTRA: &str = r#"
[[rules]]
name = "maps search"
hosts = ["maps.googleapis.com"]
methods = ["GET"]
query = { key = "*", q = "*coffee*" }
action = "allow"

[[rules]]
name = "admin anywhere"
paths = ["/admin/**", "/**/.git/**"]
action = "deny"

[[rules]]
name = "prod writes anywhere"
methods = ["POST", "PUT", "PATCH", "DELETE"]
headers = { "X-Env" = "prod*" }
action = "approve"
approvers = ["owner"]

[[rules]]
name = "db reads"
hosts = ["*.db.example.com"]
methods = ["POST"]
body = { sql = ["read"] }
action = "allow"

[[rules]]
name = "graphql reads"
hosts = ["api.github.com"]
paths = ["/graphql"]
agents = ["coder"]
body = { graphql = { operation = "query" } }
action = "allow"

[[rules]]
name = "deploy status"
hosts = ["deploy.example.com"]
body = { json = { "/action" = "status*", "/dry_run" = true } }
action = "allow"

[[rules]]
name = "mcp reads"
hosts = ["mcp.example.com"]
body = { jsonrpc = { method = "tools/list" } }
action = "allow"
"#;

pub static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    let src = format!("{}\n{POLICY_TOML_EXTRA}", airlock_config::EXAMPLE);
    Config::parse(&src, Path::new("fuzz.toml")).unwrap_or_else(|e| panic!("the fixed fuzz config is invalid: {e}"))
});

/// The decision is the one the rules it reports say it is.
fn check_decision(f: &RequestFacts, d: &Decision) {
    let p = &CONFIG.policy;
    assert!(
        d.matched.windows(2).all(|w| w[0] < w[1]),
        "matched not ascending: {d:?}"
    );
    match &d.rule {
        None => {
            // The default applied: no deny or approve rule matched (allow rules may have
            // matched some readings but not all).
            assert!(
                d.matched.iter().all(|&i| p.rules[i].action == Action::Allow),
                "default applied with a restrictive match: {d:?}"
            );
            assert_eq!(d.action, p.default);
        }
        Some(name) => {
            let i = d.matched.iter().copied().find(|&i| &p.rules[i].name == name);
            let i = i.unwrap_or_else(|| panic!("deciding rule {name:?} not among matched: {d:?}"));
            assert_eq!(d.action, p.rules[i].action);
            for &j in &d.matched {
                let r = &p.rules[j];
                assert!(r.action <= d.action, "{:?} outranks the decision {d:?}", r.name);
                assert!(r.hosts.is_empty() || r.hosts.iter().any(|h| h.matches(&f.host)));
            }
        }
    }
}

/// The gateway's facts for `h` (canonical host, every method and path reading), or None when
/// the gateway refuses the request before policy (an undecodable path).
fn facts_of(h: &Head<'_>) -> Option<RequestFacts> {
    let agent = h
        .header("x-airlock-agent")
        .map_or_else(|| "coder".to_string(), |a| String::from_utf8_lossy(a).into_owned());
    let headers: Vec<(&str, &[u8])> = h.headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    head_facts(&airlock_inspect::request::Head {
        agent: &agent,
        method: &h.method,
        scheme: h.scheme,
        host: &h.host,
        port: h.port,
        target: &h.target,
        headers: &headers,
        keep_headers: true,
    })
    .ok()
}

/// Facts from the request head, the body read as the gateway plans it, and evaluation.
pub fn policy_eval(data: &[u8]) {
    let policy = &CONFIG.policy;
    let h = parse_head(data);
    let Some(mut facts) = facts_of(&h) else { return };
    let plan = plan_body(&mut facts, policy, h.content_type());
    settle_methods(&mut facts, &plan, h.content_type(), Some(h.body));
    if !plan.needs.any() {
        // The gateway streams the body unread: reading it must not have changed anything.
        facts.body = Body::Streamed;
        let streamed = policy.evaluate(&facts);
        check_decision(&facts, &streamed);
        facts.body = Body::Inspected(inspect(h.content_type(), h.body, &facts.query, Want::ALL));
        let read = policy.evaluate(&facts);
        assert_eq!(
            (streamed.action, &streamed.rule),
            (read.action, &read.rule),
            "body_needs said no rule reads the body, yet reading it changed the decision"
        );
        return;
    }
    // Inspecting only what was asked for decides as inspecting everything does.
    facts.body = body_state(&plan, h.content_type(), Some(h.body), &facts.query);
    let wanted = policy.evaluate(&facts);
    check_decision(&facts, &wanted);
    facts.body = Body::Inspected(inspect(h.content_type(), h.body, &facts.query, Want::ALL));
    let all = policy.evaluate(&facts);
    assert_eq!(
        (wanted.action, &wanted.rule, &wanted.matched),
        (all.action, &all.rule, &all.matched),
        "inspecting {:?} decided differently from inspecting everything",
        plan.needs
    );
    // Fail closed: an unreadable body never turns a deny into anything else, nor allows.
    facts.body = Body::TooLarge;
    let too_large = policy.evaluate(&facts);
    check_decision(&facts, &too_large);
    if all.action == Action::Deny && all.rule.is_some() {
        assert_eq!(
            too_large.action,
            Action::Deny,
            "a deny rule stopped matching a too-large body"
        );
    }
}

/// One matcher of each kind, as an allow rule and as a deny rule.
static MATCHERS: LazyLock<Vec<BodyMatcher>> = LazyLock::new(|| {
    vec![
        BodyMatcher::Json(vec![JsonCond {
            pointer: "/action".into(),
            value: JsonExpect::Glob(Glob::text("status*")),
        }]),
        BodyMatcher::Json(vec![JsonCond {
            pointer: "/amount".into(),
            value: JsonExpect::Exact(serde_json::json!(10)),
        }]),
        BodyMatcher::Graphql {
            operation: Some("query".into()),
            names: vec!["viewer".into()],
        },
        BodyMatcher::JsonRpc {
            method: Some(Glob::text("tools/call")),
            tools: vec![Glob::text("read_file")],
        },
        BodyMatcher::Sql(vec![airlock_core::facts::SqlClass::Read]),
    ]
});

fn one_rule(m: &BodyMatcher, action: Action) -> Policy {
    let rule = Rule {
        name: "r".into(),
        hosts: vec![],
        methods: vec![],
        paths: vec![],
        agents: vec![],
        query: vec![],
        headers: vec![],
        body: Some(m.clone()),
        action,
        reason: None,
        rate: None,
        approval: None,
    };
    let default = if action == Action::Allow {
        Action::Deny
    } else {
        Action::Allow
    };
    Policy::new(default, vec![rule])
}

/// Invariant 12 on the body readings: whatever an `allow` rule's matcher accepts, the same
/// matcher in a `deny` rule catches (the permissive reading implies the restrictive one), and
/// a body that could not be read whole is never allowed by a matcher.
pub fn body_readings(data: &[u8]) {
    let h = parse_head(data);
    let Some(mut facts) = facts_of(&h) else { return };
    facts.body = Body::Inspected(inspect(h.content_type(), h.body, &facts.query, Want::ALL));
    for m in MATCHERS.iter() {
        let allowed = one_rule(m, Action::Allow).evaluate(&facts).action == Action::Allow;
        let denied = one_rule(m, Action::Deny).evaluate(&facts).action == Action::Deny;
        assert!(
            !allowed || denied,
            "{m:?} allows a body its deny twin does not catch: {facts:?}"
        );
        let mut unread = facts.clone();
        unread.body = Body::TooLarge;
        assert_eq!(one_rule(m, Action::Allow).evaluate(&unread).action, Action::Deny);
        assert_eq!(one_rule(m, Action::Deny).evaluate(&unread).action, Action::Deny);
    }
}

/// The configuration loader on arbitrary text.
pub fn config_load(data: &[u8]) {
    airlock_config::fuzz_parse(data);
}
