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

use std::collections::HashMap;

use serde::Serialize;

use crate::facts::{Body, BodyFacts, RequestFacts, SqlClass};
use crate::glob::{Glob, HostPattern};

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

/// A JSON pointer condition: the value at `pointer` equals `value` (strings are globs).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCond {
    pub pointer: String,
    pub value: JsonExpect,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsonExpect {
    Glob(Glob),
    Exact(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyMatcher {
    /// Every pointer condition holds.
    Json(Vec<JsonCond>),
    /// Some operation of `operation` kind (any when None) selects one of `names` (any when empty).
    Graphql {
        operation: Option<String>,
        names: Vec<String>,
    },
    /// Some call's method matches, and (when given) its MCP tool is one of `tools`.
    JsonRpc { method: Option<Glob>, tools: Vec<String> },
    /// Some statement is of one of these classes.
    Sql(Vec<SqlClass>),
}

/// What a rule needs from the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyNeeds {
    pub json: bool,
    pub graphql: bool,
    pub jsonrpc: bool,
    pub sql: bool,
}

impl BodyNeeds {
    pub fn any(&self) -> bool {
        self.json || self.graphql || self.jsonrpc || self.sql
    }

    fn add(&mut self, m: &BodyMatcher) {
        match m {
            BodyMatcher::Json(_) => self.json = true,
            BodyMatcher::Graphql { .. } => self.graphql = true,
            BodyMatcher::JsonRpc { .. } => self.jsonrpc = true,
            BodyMatcher::Sql(_) => self.sql = true,
        }
    }
}

/// `count` requests per `per_secs`, per agent and rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub count: u32,
    pub per_secs: u32,
}

impl Rate {
    /// Parses `"60/min"`, `"10/s"`, `"1000/hour"`, `"5/day"`.
    pub fn parse(s: &str) -> Option<Rate> {
        let (n, unit) = s.split_once('/')?;
        let count: u32 = n.trim().parse().ok().filter(|c| *c > 0)?;
        let per_secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return None,
        };
        Some(Rate { count, per_secs })
    }

    /// GCRA in milliseconds: `(interval, burst)`. A request at `now` is within the rate while
    /// `max(tat, now) + interval <= now + burst`, and then moves `tat` there.
    pub fn gcra_ms(self) -> (u64, u64) {
        let count = u64::from(self.count.max(1));
        let interval = u64::from(self.per_secs) * 1000 / count;
        (interval, interval * count)
    }
}

/// What an `approve` rule requires (consumed by the approvals subsystem).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalSpec {
    pub approvers: Vec<String>,
    pub quorum: u32,
    pub timeout_secs: u64,
    pub grant_secs: Option<u64>,
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
    /// Empty: every agent.
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

/// Which side of invariant 12 a rule is read on: `deny`/`approve` rules trigger when any
/// reading matches; `allow` rules must hold for every reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Restrictive,
    Permissive,
}

/// How a body condition held: by what was read, or by the restrictive reading of what was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    No,
    Yes,
    Assumed(&'static str),
}

impl From<bool> for Hit {
    fn from(b: bool) -> Hit {
        if b { Hit::Yes } else { Hit::No }
    }
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
        (self.agents.is_empty() || self.agents.iter().any(|a| a == &f.agent))
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
            Body::Inspected(facts) => body_matches(m, facts, side),
            Body::TooLarge | Body::Streamed => unread(side, "the body could not be read whole"),
            Body::Empty => Hit::No,
        }
    }
}

/// Restrictive: some value matches. Permissive: there is a value, and every one matches (a
/// server may take the first or the last of a repeated key).
fn values_ok<'a>(vals: impl Iterator<Item = &'a str>, g: &Glob, side: Side) -> bool {
    let mut seen = false;
    for v in vals {
        match (side, g.matches(v)) {
            (Side::Restrictive, true) => return true,
            (Side::Permissive, false) => return false,
            _ => seen = true,
        }
    }
    side == Side::Permissive && seen
}

/// What cannot be read satisfies restrictive rules and never permissive ones.
fn unread(side: Side, why: &'static str) -> Hit {
    match side {
        Side::Restrictive => Hit::Assumed(why),
        Side::Permissive => Hit::No,
    }
}

/// Restrictive: some item matches. Permissive: there is an item, and every one matches.
fn each<T>(items: &[T], side: Side, ok: impl Fn(&T) -> bool) -> Hit {
    match side {
        Side::Restrictive => items.iter().any(ok).into(),
        Side::Permissive => (!items.is_empty() && items.iter().all(ok)).into(),
    }
}

fn body_matches(m: &BodyMatcher, f: &BodyFacts, side: Side) -> Hit {
    match m {
        BodyMatcher::Json(conds) => {
            if f.json_unread {
                return unread(side, "part of the JSON body could not be read");
            }
            each(&f.json, side, |v| conds.iter().all(|c| json_cond(v, c, side)))
        }
        BodyMatcher::Graphql { operation, names } => {
            if f.graphql.iter().any(|op| op.kind == "unparsed") {
                return unread(side, "a GraphQL document could not be read");
            }
            each(&f.graphql, side, |op| {
                let named = match side {
                    // The operation's own name is the sender's choice: it may trigger a rule, never pass one.
                    Side::Restrictive => {
                        op.name.as_ref().is_some_and(|n| names.contains(n))
                            || op.fields.iter().any(|n| names.contains(n))
                    }
                    Side::Permissive => !op.fields.is_empty() && op.fields.iter().all(|n| names.contains(n)),
                };
                operation.as_ref().is_none_or(|k| k == &op.kind) && (names.is_empty() || named)
            })
        }
        BodyMatcher::JsonRpc { method, tools } => {
            if f.json_unread {
                return unread(side, "part of the JSON body could not be read");
            }
            each(&f.jsonrpc, side, |c| {
                let tool = match &c.tool {
                    Some(t) => tools.contains(t),
                    None => side == Side::Restrictive && c.tool_unread,
                };
                method.as_ref().is_none_or(|g| g.matches(&c.method)) && (tools.is_empty() || tool)
            })
        }
        BodyMatcher::Sql(classes) => {
            if f.sql_unparsed {
                return unread(side, "some SQL could not be parsed");
            }
            each(&f.sql, side, |c| classes.contains(c))
        }
    }
}

/// One pointer condition against one JSON reading. Keys compare as Go's `encoding/json` reads
/// them (case-insensitively), so every member a server may take is a candidate.
fn json_cond(v: &serde_json::Value, c: &JsonCond, side: Side) -> bool {
    let mut found = Vec::new();
    resolve(v, &c.pointer, &mut found);
    let ok = |got: &&serde_json::Value| match (got, &c.value) {
        (serde_json::Value::String(s), JsonExpect::Glob(g)) => g.matches(s),
        (other, JsonExpect::Glob(g)) => g.matches(&other.to_string()),
        (got, JsonExpect::Exact(want)) => json_eq(got, want),
    };
    match side {
        Side::Restrictive => found.iter().any(ok),
        Side::Permissive => !found.is_empty() && found.iter().all(ok),
    }
}

/// Every value at `pointer` (RFC 6901), matching object keys by Unicode simple case folding.
fn resolve<'a>(v: &'a serde_json::Value, pointer: &str, out: &mut Vec<&'a serde_json::Value>) {
    let Some(rest) = pointer.strip_prefix('/') else {
        if pointer.is_empty() {
            out.push(v);
        }
        return;
    };
    let (token, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let token = token.replace("~1", "/").replace("~0", "~");
    match v {
        serde_json::Value::Object(map) => {
            for (_, child) in map.iter().filter(|(k, _)| fold_eq(k, &token)) {
                resolve(child, tail, out);
            }
        }
        serde_json::Value::Array(items) => {
            let index = token
                .parse::<usize>()
                .ok()
                .filter(|_| token == "0" || !token.starts_with('0'));
            if let Some(child) = index.and_then(|i| items.get(i)) {
                resolve(child, tail, out);
            }
        }
        _ => {}
    }
}

/// Equal under Unicode simple case folding (`ſ` is `s`, `K` the Kelvin sign is `k`), as Go's
/// `encoding/json` matches keys.
pub fn fold_eq(a: &str, b: &str) -> bool {
    fn fold(c: char) -> char {
        let mut up = c.to_uppercase();
        let u = match (up.next(), up.next()) {
            (Some(u), None) => u,
            _ => c,
        };
        u.to_lowercase().next().unwrap_or(u)
    }
    a == b || a.chars().map(fold).eq(b.chars().map(fold))
}

/// JSON equality where numbers compare by value: `1000`, `1000.0` and `1e3` are one amount.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) if x.is_f64() || y.is_f64() => x.as_f64() == y.as_f64(),
        (V::Array(x), V::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, xv)| y.get(k).is_some_and(|yv| json_eq(xv, yv)))
        }
        _ => a == b,
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
            if strict.as_ref().is_none_or(|(j, _)| r.action > self.rules[*j].action) {
                let assumed = if let Hit::Assumed(why) = hit { Some(why) } else { None };
                strict = Some((i, describe(f, m, p, assumed)));
            }
        }
        // Allow rules: every (method, path) reading must be matched by one.
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
            }
        }
        matched.extend(allowing.iter().zip(&used).filter(|(_, u)| **u).map(|(i, _)| *i));
        matched.sort_unstable();
        if let Some((i, reading)) = strict {
            let r = &self.rules[i];
            let base = r.reason.clone().unwrap_or_else(|| match r.action {
                Action::Approve => format!("rule \"{}\" requires human approval", r.name),
                _ => format!("denied by rule \"{}\"", r.name),
            });
            return Decision {
                action: r.action,
                rule: Some(r.name.clone()),
                reason: with_reading(base, &reading),
                matched,
                reading: (!reading.is_empty()).then_some(reading),
            };
        }
        match (uncovered, first_allow) {
            (None, Some(i)) => {
                let r = &self.rules[i];
                Decision {
                    action: Action::Allow,
                    rule: Some(r.name.clone()),
                    reason: r
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("allowed by rule \"{}\"", r.name)),
                    matched,
                    reading: None,
                }
            }
            (Some((m, p)), _) => {
                let reading = describe(f, m, p, None);
                let default = self.default.as_str();
                let reason = if reading.is_empty() {
                    format!(
                        "no rule matches {} {}{}; the default is {default}",
                        f.method(),
                        f.host,
                        f.path()
                    )
                } else {
                    format!("no rule allows this request when it is read as {reading}; the default is {default}")
                };
                Decision {
                    action: self.default,
                    rule: None,
                    reason,
                    matched,
                    reading: (!reading.is_empty()).then_some(reading),
                }
            }
            // No readings at all cannot come from the edge; refuse rather than guess.
            (None, None) => Decision {
                action: Action::Deny,
                rule: None,
                reason: "the request has no method or path to decide on".into(),
                matched,
                reading: None,
            },
        }
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

/// Generic cell rate limiting (GCRA, [`Rate::gcra_ms`]): one timestamp per key, time given by
/// the caller. The store runs the same arithmetic for replicas that share their limits.
#[derive(Debug, Default)]
pub struct RateLimiter {
    tat: HashMap<(usize, String), u64>,
}

impl RateLimiter {
    /// Records one request for (`rule`, `agent`) at `now_ms`; false when it exceeds `rate`.
    pub fn check(&mut self, rule: usize, agent: &str, rate: Rate, now_ms: u64) -> bool {
        let (interval, burst) = rate.gcra_ms();
        let key = (rule, agent.to_string());
        let tat = self.tat.get(&key).copied().unwrap_or(now_ms).max(now_ms);
        if tat - now_ms + interval > burst {
            return false;
        }
        self.tat.insert(key, tat + interval);
        true
    }

    /// Drops keys idle long enough to be full again; call now and then to bound memory.
    pub fn prune(&mut self, now_ms: u64) {
        self.tat.retain(|_, tat| *tat > now_ms);
    }
}
