//! Body matchers: JSON pointers, GraphQL operations, JSON-RPC/MCP calls and SQL classes, each
//! read on its side (a body part that could not be read triggers and never allows).

use crate::facts::{BodyFacts, SqlClass};
use crate::glob::Glob;

use super::side::{Hit, Side, each, unread};

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
    /// Some call's method matches, and (when given) its MCP tool matches one of `tools`. AWS calls
    /// come as `aws:<service>` calls whose tool is the action (`airlock-inspect`'s `aws`).
    JsonRpc { method: Option<Glob>, tools: Vec<Glob> },
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

    pub(crate) fn add(&mut self, m: &BodyMatcher) {
        match m {
            BodyMatcher::Json(_) => self.json = true,
            BodyMatcher::Graphql { .. } => self.graphql = true,
            BodyMatcher::JsonRpc { .. } => self.jsonrpc = true,
            BodyMatcher::Sql(_) => self.sql = true,
        }
    }
}

pub(crate) fn body_matches(m: &BodyMatcher, f: &BodyFacts, side: Side) -> Hit {
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
                    Some(t) => tools.iter().any(|g| g.matches(t)),
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
