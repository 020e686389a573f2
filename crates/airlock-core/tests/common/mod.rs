// Shared builders for the core's tests and benches.
#![allow(dead_code)]
use airlock_core::facts::{Reading, RequestFacts, Scheme};
use airlock_core::glob::{Glob, HostPattern};
use airlock_core::policy::{Action, Rule};

pub fn rule(name: &str, host: &str, methods: &[&str], action: Action) -> Rule {
    Rule {
        name: name.into(),
        hosts: vec![HostPattern::parse(host).unwrap()],
        methods: methods.iter().map(|m| m.to_string()).collect(),
        paths: vec![],
        agents: vec![],
        query: vec![],
        headers: vec![],
        body: None,
        action,
        reason: None,
        rate: None,
        approval: None,
    }
}

pub fn with_paths(mut r: Rule, paths: &[&str]) -> Rule {
    r.paths = paths.iter().map(|p| Glob::path(p)).collect();
    r
}

/// One reading of each part (the edge's readings are `airlock-inspect`'s to test).
pub fn facts(method: &str, host: &str, target: &str) -> RequestFacts {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut f = RequestFacts::new("bot", method, Scheme::Https, host, 443, path);
    f.query = airlock_core::inject::query_pairs(query);
    f
}

/// `f` with another reading of its method (`None`: unreadable) and of its path.
pub fn also(mut f: RequestFacts, method: Option<Option<&str>>, path: Option<&str>) -> RequestFacts {
    if let Some(m) = method {
        f.methods
            .push(Reading::derived(m.map(str::to_owned), "a test's override"));
    }
    if let Some(p) = path {
        f.paths.push(Reading::derived(p.to_owned(), "a test's reading"));
    }
    f
}
