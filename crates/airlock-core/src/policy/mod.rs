//! The policy model and its evaluation: a pure function from request facts to a decision.
//!
//! Every matching rule counts; deny beats approve beats allow; no match → the default.
//!
//! A request is read every way the servers behind airlock may read it ([`crate::facts`],
//! invariant 12): a `deny` or `approve` rule triggers when **any** reading matches it, and the
//! request is allowed only when **every** reading is matched by an `allow` rule. What could not
//! be read (a body over the limit, SQL that does not parse, an override in an unread body)
//! satisfies `deny`/`approve` rules and never `allow` rules — the restrictive reading — and the
//! decision's reason says so.
//!
//! Files: `side.rs` (how a condition holds on each side), `body.rs` (body matchers), `rate.rs`
//! (rate limits); this file holds rules, the host index and evaluation.

use std::collections::HashMap;

use serde::Serialize;

use crate::facts::{Body, RequestFacts};
use crate::glob::{Glob, HostPattern};

mod body;
mod rate;
mod side;

pub use body::{BodyMatcher, BodyNeeds, JsonCond, JsonExpect, fold_eq};
pub use rate::{Rate, RateLimiter};
use side::{Hit, Side, unread, values_ok};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Approve,
    Deny,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Action::Allow),
            "approve" => Some(Action::Approve),
            "deny" => Some(Action::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Approve => "approve",
            Action::Deny => "deny",
        }
    }
}

/// What an `approve` rule requires (consumed by the approvals subsystem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalSpec {
    pub approvers: Vec<String>,
    pub quorum: u32,
    pub timeout_secs: u64,
    pub grant_secs: Option<u64>,
    /// `on_hold = "defer"`: answered at once (428); the identical request passes once within this window.
    pub defer_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// Empty: every host.
    pub hosts: Vec<HostPattern>,
    /// Upper-case; empty: every method.
    pub methods: Vec<String>,
    /// Globs on the normalized path; empty: every path.
    pub paths: Vec<Glob>,
    /// Empty: every agent; `"ag-*"` every agent whose name starts `ag-`.
    pub agents: Vec<String>,
    /// Each named parameter must be present with a matching value.
    pub query: Vec<(String, Glob)>,
    /// Lower-case names; each must be present with a matching value.
    pub headers: Vec<(String, Glob)>,
    pub body: Option<BodyMatcher>,
    pub action: Action,
    /// Operator-written explanation shown to the agent, if any.
    pub reason: Option<String>,
    pub rate: Option<Rate>,
    pub approval: Option<ApprovalSpec>,
}

impl Rule {
    fn method_ok(&self, m: &Option<String>, side: Side) -> bool {
        if self.methods.is_empty() {
            return true;
        }
        match m {
            // An override that could not be read may name any method.
            None => side == Side::Restrictive,
            // HEAD is GET without the body: governed by GET's rules as well as its own.
            Some(m) => self.methods.iter().any(|r| r == m || (r == "GET" && m == "HEAD")),
        }
    }

    fn path_ok(&self, p: &str, side: Side) -> bool {
        // Routers that ignore case (Express's default, ASP.NET) reach a denied path spelled in
        // another case; a literal match implies the folded one, so allow rules need only this.
        self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|g| g.matches(p) || (side == Side::Restrictive && g.matches_ignore_ascii_case(p)))
    }

    /// The agent, query and header conditions (one reading each; repeated keys are several values).
    fn fixed_ok(&self, f: &RequestFacts, side: Side) -> bool {
        // An entry ending in `*` names every agent with that prefix (agents created through an API).
        let named = |a: &String| a == &f.agent || a.strip_suffix('*').is_some_and(|p| f.agent.starts_with(p));
        (self.agents.is_empty() || self.agents.iter().any(named))
            && self.query.iter().all(|(k, g)| {
                // Some servers read query keys without regard to case (ASP.NET, PHP's $_REQUEST on IIS).
                let vals = f.query.iter().filter(|(qk, _)| qk.eq_ignore_ascii_case(k));
                values_ok(vals.map(|(_, v)| v.as_str()), g, side)
            })
            && self.headers.iter().all(|(k, g)| {
                let vals = f.headers.iter().filter(|(hk, _)| hk == k);
                values_ok(vals.map(|(_, v)| v.as_str()), g, side)
            })
    }

    /// The first (method, path) reading this rule matches on `side`, by index.
    fn reading(&self, f: &RequestFacts, side: Side) -> Option<(usize, usize)> {
        let m = f.methods.iter().position(|m| self.method_ok(&m.value, side))?;
        let p = f.paths.iter().position(|p| self.path_ok(&p.value, side))?;
        Some((m, p))
    }

    fn body_hit(&self, body: &Body, side: Side) -> Hit {
        let Some(m) = &self.body else { return Hit::Yes };
        match body {
            Body::Inspected(facts) => body::body_matches(m, facts, side),
            Body::TooLarge | Body::Streamed => unread(side, "the body could not be read whole"),
            Body::Empty => Hit::No,
        }
    }
}

/// The outcome of evaluation. `reason` is safe to show the agent and to audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub action: Action,
    /// The deciding rule; None when the default applied.
    pub rule: Option<String>,
    pub reason: String,
    /// Indices of every matching rule, in policy order.
    pub matched: Vec<usize>,
    /// The reading that decided, when it is not the request as sent (e.g. "DELETE /send, from
    /// the X-HTTP-Method-Override header").
    pub reading: Option<String>,
}

/// Rules compiled with a host index, so evaluation touches only rules that can match.
#[derive(Debug, Clone)]
pub struct Policy {
    pub default: Action,
    pub rules: Vec<Rule>,
    exact: HashMap<String, Vec<usize>>,
    suffix: HashMap<String, Vec<usize>>,
    any_host: Vec<usize>,
    header_rules: bool,
}

impl Policy {
    pub fn new(default: Action, rules: Vec<Rule>) -> Self {
        let header_rules = rules.iter().any(|r| !r.headers.is_empty());
        let mut p = Policy {
            default,
            rules,
            exact: HashMap::new(),
            suffix: HashMap::new(),
            any_host: vec![],
            header_rules,
        };
        for (i, r) in p.rules.iter().enumerate() {
            if r.hosts.is_empty() {
                p.any_host.push(i);
            }
            for h in &r.hosts {
                match h {
                    HostPattern::Exact(h) => p.exact.entry(h.clone()).or_default().push(i),
                    HostPattern::Suffix(s) => p.suffix.entry(s.clone()).or_default().push(i),
                    HostPattern::Any => p.any_host.push(i),
                }
            }
        }
        p
    }

    /// Whether any rule matches on headers: if none does, the edge need not collect them.
    pub fn uses_headers(&self) -> bool {
        self.header_rules
    }

    /// Indices of rules whose host patterns admit `host`, ascending, without duplicates.
    fn candidates(&self, host: &str) -> Vec<usize> {
        let mut c: Vec<usize> = self.any_host.clone();
        if let Some(v) = self.exact.get(host) {
            c.extend_from_slice(v);
        }
        if !self.suffix.is_empty() {
            // Every proper suffix starting at a dot: a.b.com → .b.com, .com
            for (i, _) in host.match_indices('.') {
                if let Some(v) = self.suffix.get(&host[i..])
                    && i > 0
                {
                    c.extend_from_slice(v);
                }
            }
        }
        c.sort_unstable();
        c.dedup();
        c
    }

    /// What the body must be inspected for, given everything else about the request.
    /// Nothing needed → the gateway streams the body unread.
    pub fn body_needs(&self, f: &RequestFacts) -> BodyNeeds {
        let mut needs = BodyNeeds::default();
        for i in self.candidates(&f.host) {
            let r = &self.rules[i];
            if let Some(m) = &r.body
                && r.fixed_ok(f, Side::Restrictive)
                && r.reading(f, Side::Restrictive).is_some()
            {
                needs.add(m);
            }
        }
        needs
    }

    /// Whether a rule that could match this request names methods: only then may a method
    /// override hidden in the body change the decision, and only then must the edge read it.
    pub fn methods_matter(&self, f: &RequestFacts) -> bool {
        self.candidates(&f.host).into_iter().any(|i| {
            let r = &self.rules[i];
            !r.methods.is_empty()
                && r.fixed_ok(f, Side::Restrictive)
                && f.paths.iter().any(|p| r.path_ok(&p.value, Side::Restrictive))
        })
    }

    pub fn evaluate(&self, f: &RequestFacts) -> Decision {
        let candidates = self.candidates(&f.host);
        let mut matched = Vec::new();
        // Deny and approve rules: any reading that matches triggers them.
        let mut strict: Option<(usize, String)> = None;
        let mut strict_rules = Vec::new();
        for &i in &candidates {
            let r = &self.rules[i];
            if r.action == Action::Allow || !r.fixed_ok(f, Side::Restrictive) {
                continue;
            }
            let Some((m, p)) = r.reading(f, Side::Restrictive) else {
                continue;
            };
            let hit = r.body_hit(&f.body, Side::Restrictive);
            if hit == Hit::No {
                continue;
            }
            matched.push(i);
            strict_rules.push(i);
            if strict.as_ref().is_none_or(|(j, _)| r.action > self.rules[*j].action) {
                let assumed = if let Hit::Assumed(why) = hit { Some(why) } else { None };
                strict = Some((i, describe(f, m, p, assumed)));
            }
        }
        // Allow rules: every (method, path) reading must be matched by one. A reading no rule
        // matches at all gets the default, even when another reading triggered an approve rule:
        // `/a/` under an approve rule for `/a/**` is still `/a` to the server, denied by default.
        let allowing: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                let r = &self.rules[i];
                r.action == Action::Allow
                    && r.fixed_ok(f, Side::Permissive)
                    && r.body_hit(&f.body, Side::Permissive) == Hit::Yes
            })
            .collect();
        let mut first_allow = None;
        let mut uncovered = None;
        let mut unmatched = None;
        let mut used = vec![false; allowing.len()];
        for (m, method) in f.methods.iter().enumerate() {
            for (p, path) in f.paths.iter().enumerate() {
                let mut covered = false;
                for (k, &i) in allowing.iter().enumerate() {
                    let r = &self.rules[i];
                    if r.method_ok(&method.value, Side::Permissive) && r.path_ok(&path.value, Side::Permissive) {
                        used[k] = true;
                        if !covered && m == 0 && p == 0 {
                            first_allow = Some(i);
                        }
                        covered = true;
                    }
                }
                if !covered {
                    uncovered.get_or_insert((m, p));
                }
                let strictly = |&i: &usize| {
                    let r = &self.rules[i];
                    r.method_ok(&method.value, Side::Restrictive) && r.path_ok(&path.value, Side::Restrictive)
                };
                if !covered && !strict_rules.iter().any(strictly) {
                    unmatched.get_or_insert((m, p));
                }
            }
        }
        matched.extend(allowing.iter().zip(&used).filter(|(_, u)| **u).map(|(i, _)| *i));
        matched.sort_unstable();
        let default = self.default.as_str();
        if let Some((i, reading)) = strict {
            let r = &self.rules[i];
            if let Some((m, p)) = unmatched
                && self.default > r.action
            {
                let reading = describe(f, m, p, None);
                let read = if reading.is_empty() {
                    "as sent".to_string()
                } else {
                    format!("as {reading}")
                };
                let reason = format!(
                    "rule \"{}\" matches this request, but no rule matches it when it is read {read}; the default is {default}",
                    r.name
                );
                return decided(self.default, None, reason, matched, reading);
            }
            let base = r.reason.clone().unwrap_or_else(|| match r.action {
                Action::Approve => format!("rule \"{}\" requires human approval", r.name),
                _ => format!("denied by rule \"{}\"", r.name),
            });
            return decided(r.action, Some(r), with_reading(base, &reading), matched, reading);
        }
        match (uncovered, first_allow) {
            (None, Some(i)) => {
                let r = &self.rules[i];
                let reason = r.reason.clone();
                let reason = reason.unwrap_or_else(|| format!("allowed by rule \"{}\"", r.name));
                decided(Action::Allow, Some(r), reason, matched, String::new())
            }
            (Some((m, p)), _) => {
                let reading = describe(f, m, p, None);
                let reason = if reading.is_empty() {
                    let (method, host, path) = (f.method(), &f.host, f.path());
                    format!("no rule matches {method} {host}{path}; the default is {default}")
                } else {
                    format!("no rule allows this request when it is read as {reading}; the default is {default}")
                };
                decided(self.default, None, reason, matched, reading)
            }
            // No readings at all cannot come from the edge; refuse rather than guess.
            (None, None) => {
                let reason = "the request has no method or path to decide on".into();
                decided(Action::Deny, None, reason, matched, String::new())
            }
        }
    }
}

fn decided(action: Action, rule: Option<&Rule>, reason: String, matched: Vec<usize>, reading: String) -> Decision {
    let rule = rule.map(|r| r.name.clone());
    let reading = (!reading.is_empty()).then_some(reading);
    Decision {
        action,
        rule,
        reason,
        matched,
        reading,
    }
}

/// "DELETE /send (the X-HTTP-Method-Override header; matrix parameters removed)", or "" for the
/// request as sent and fully read.
fn describe(f: &RequestFacts, m: usize, p: usize, assumed: Option<&str>) -> String {
    let (method, path) = (&f.methods[m], &f.paths[p]);
    let hows: Vec<&str> = [method.how.as_deref(), path.how.as_deref(), assumed]
        .into_iter()
        .flatten()
        .collect();
    if hows.is_empty() {
        return String::new();
    }
    let shown = method.value.as_deref().unwrap_or("an unreadable method");
    format!("{shown} {} ({})", path.value, hows.join("; "))
}

fn with_reading(base: String, reading: &str) -> String {
    if reading.is_empty() {
        base
    } else {
        format!("{base} — read restrictively as {reading}")
    }
}
