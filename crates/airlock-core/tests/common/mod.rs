// Shared builders for the core's tests and benches.
#![allow(dead_code)]
use airlock_core::facts::{Body, RequestFacts, Scheme};
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

pub fn facts(method: &str, host: &str, target: &str) -> RequestFacts {
    let (path, query) = airlock_core::path::split_target(target);
    RequestFacts {
        agent: "bot".into(),
        method: method.into(),
        scheme: Scheme::Https,
        host: host.into(),
        port: 443,
        path: airlock_core::path::normalize(path),
        query,
        headers: vec![],
        body: Body::Empty,
    }
}
