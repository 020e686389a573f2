//! The policy model and its evaluation: a pure function from request facts to a decision.
//!
//! Every matching rule counts; deny beats approve beats allow; no match → the default.
//! Rules that need the body are evaluated on body facts the edge extracted; when the body
//! could not be read (too large) or its text did not parse, deny and approve rules treat
//! the body condition as met and allow rules as unmet — the fail-closed reading.

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

impl Rule {
    /// Every condition but the body.
    fn matches_head(&self, f: &RequestFacts) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == &f.method))
            && (self.agents.is_empty() || self.agents.iter().any(|a| a == &f.agent))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(&f.path)))
            && self
                .query
                .iter()
                .all(|(k, g)| f.query.iter().any(|(qk, qv)| qk == k && g.matches(qv)))
            && self
                .headers
                .iter()
                .all(|(k, g)| f.headers.iter().any(|(hk, hv)| hk == k && g.matches(hv)))
    }

    fn matches_body(&self, body: &Body) -> bool {
        let Some(m) = &self.body else { return true };
        // Fail closed: an unreadable body satisfies restrictive rules, never permissive ones.
        let restrictive = self.action != Action::Allow;
        match body {
            Body::Inspected(facts) => body_matches(m, facts, restrictive),
            Body::TooLarge | Body::Streamed => restrictive,
            Body::Empty => false,
        }
    }
}

fn body_matches(m: &BodyMatcher, f: &BodyFacts, restrictive: bool) -> bool {
    match m {
        BodyMatcher::Json(conds) => {
            let Some(v) = &f.json else { return false };
            conds.iter().all(|c| match (v.pointer(&c.pointer), &c.value) {
                (None, _) => false,
                (Some(serde_json::Value::String(s)), JsonExpect::Glob(g)) => g.matches(s),
                (Some(other), JsonExpect::Glob(g)) => g.matches(&other.to_string()),
                (Some(got), JsonExpect::Exact(want)) => got == want,
            })
        }
        BodyMatcher::Graphql { operation, names } => f.graphql.iter().any(|op| {
            if op.kind == "unparsed" {
                return restrictive;
            }
            operation.as_ref().is_none_or(|k| k == &op.kind)
                && (names.is_empty() || op.names.iter().any(|n| names.contains(n)))
        }),
        BodyMatcher::JsonRpc { method, tools } => f.jsonrpc.iter().any(|c| {
            method.as_ref().is_none_or(|g| g.matches(&c.method))
                && (tools.is_empty() || c.tool.as_ref().is_some_and(|t| tools.contains(t)))
        }),
        BodyMatcher::Sql(classes) => (f.sql_unparsed && restrictive) || f.sql.iter().any(|c| classes.contains(c)),
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
                && r.matches_head(f)
            {
                needs.add(m);
            }
        }
        needs
    }

    pub fn evaluate(&self, f: &RequestFacts) -> Decision {
        let matched: Vec<usize> = self
            .candidates(&f.host)
            .into_iter()
            .filter(|&i| self.rules[i].matches_head(f) && self.rules[i].matches_body(&f.body))
            .collect();
        // Deny > approve > allow; among equals the first rule in policy order decides.
        let decisive = matched
            .iter()
            .copied()
            .max_by(|&a, &b| self.rules[a].action.cmp(&self.rules[b].action).then(b.cmp(&a)));
        match decisive {
            None => Decision {
                action: self.default,
                rule: None,
                reason: format!(
                    "no rule matches {} {}{}; the default is {}",
                    f.method,
                    f.host,
                    f.path,
                    self.default.as_str()
                ),
                matched,
            },
            Some(i) => {
                let r = &self.rules[i];
                let reason = r.reason.clone().unwrap_or_else(|| match r.action {
                    Action::Allow => format!("allowed by rule \"{}\"", r.name),
                    Action::Approve => format!("rule \"{}\" requires human approval", r.name),
                    Action::Deny => format!("denied by rule \"{}\"", r.name),
                });
                Decision {
                    action: r.action,
                    rule: Some(r.name.clone()),
                    reason,
                    matched,
                }
            }
        }
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
