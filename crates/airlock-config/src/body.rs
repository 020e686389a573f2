//! A rule's `body` matcher: exactly one of `json`, `graphql`, `jsonrpc`, `sql` or `aws` (also
//! written as the rule's own `aws` key).

use airlock_core::facts::SqlClass;
use airlock_core::glob::Glob;
use airlock_core::policy::{BodyMatcher, JsonCond, JsonExpect};
use toml::Value;

use crate::error::{Errors, KeyPath};
use crate::raw::{Fields, as_table};

const KINDS: &[&str] = &["json", "graphql", "jsonrpc", "sql", "aws"];
/// Nesting allowed in an exact JSON value; the TOML parser's own limit is lower in practice.
const MAX_DEPTH: usize = 32;

/// An RFC 6901 pointer: empty, or `/`-separated tokens where `~` is followed by `0` or `1`.
fn valid_pointer(p: &str) -> bool {
    (p.is_empty() || p.starts_with('/')) && p.split('~').skip(1).all(|rest| rest.starts_with(['0', '1']))
}

/// A TOML value as the JSON value a body must hold exactly.
fn to_json(v: &Value, depth: usize) -> Result<serde_json::Value, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    Ok(match v {
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Float(x) => serde_json::Number::from_f64(*x)
            .map(serde_json::Value::Number)
            .ok_or("NaN and infinity have no JSON form")?,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Datetime(_) => return Err("a date-time has no JSON form; write it as a string".into()),
        Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|i| to_json(i, depth + 1)).collect::<Result<_, _>>()?)
        }
        Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn json(v: &Value, path: &KeyPath, errs: &mut Errors) -> Option<BodyMatcher> {
    let t = as_table(v, path, errs)?;
    let mut conds = Vec::new();
    for (pointer, want) in t {
        let p = path.key(pointer);
        if !valid_pointer(pointer) {
            errs.push(
                &p,
                "a JSON pointer is \"\" or starts with \"/\" (RFC 6901; escape ~ as ~0 and / as ~1)",
            );
            continue;
        }
        let value = match want {
            Value::String(s) => JsonExpect::Glob(Glob::text(s)),
            other => match to_json(other, 0) {
                Ok(j) => JsonExpect::Exact(j),
                Err(e) => {
                    errs.push(&p, e);
                    continue;
                }
            },
        };
        conds.push(JsonCond {
            pointer: pointer.clone(),
            value,
        });
    }
    Some(BodyMatcher::Json(conds))
}

fn names(f: &Fields<'_>, key: &str, errs: &mut Errors) -> Vec<String> {
    let list = f.str_or_strs(key, errs);
    for (p, s) in &list {
        if s.is_empty() {
            errs.push(p, "must not be empty");
        }
    }
    list.into_iter().map(|(_, s)| s.to_string()).collect()
}

fn graphql(v: &Value, path: &KeyPath, errs: &mut Errors) -> Option<BodyMatcher> {
    let f = Fields::new(as_table(v, path, errs)?, path.clone(), &["operation", "name"], errs);
    let operation = f.str("operation", errs).map(str::to_string);
    if let Some(op) = &operation
        && !["query", "mutation", "subscription"].contains(&op.as_str())
    {
        errs.push(
            &f.at("operation"),
            format!("unknown operation {op:?} (expected query, mutation or subscription)"),
        );
    }
    let names = names(&f, "name", errs);
    Some(BodyMatcher::Graphql { operation, names })
}

fn jsonrpc(v: &Value, path: &KeyPath, errs: &mut Errors) -> Option<BodyMatcher> {
    let f = Fields::new(as_table(v, path, errs)?, path.clone(), &["method", "tool"], errs);
    let method = f.str("method", errs).map(Glob::text);
    let tools = names(&f, "tool", errs).iter().map(|t| Glob::text(t)).collect();
    Some(BodyMatcher::JsonRpc { method, tools })
}

/// A statement class as written in the file (the names the core serializes them as).
pub fn sql_class(s: &str) -> Option<SqlClass> {
    use SqlClass::*;
    [Read, Write, Ddl, Other, Role, Copy, Procedural]
        .into_iter()
        .find(|c| serde_json::to_value(c).ok().is_some_and(|v| v == s))
}

/// `aws = { service = "ec2", action = ["TerminateInstances", "Delete*"] }`: the edge reads AWS
/// calls as JSON-RPC calls `aws:<service>` whose tool is the action.
pub(crate) fn aws(v: &Value, path: &KeyPath, errs: &mut Errors) -> Option<BodyMatcher> {
    let f = Fields::new(as_table(v, path, errs)?, path.clone(), &["service", "action"], errs);
    let service = f.str("service", errs).unwrap_or("*");
    if service.is_empty()
        || !service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.*?".contains(&b))
    {
        errs.push(
            &f.at("service"),
            format!("{service:?} is not an AWS service name (as in its endpoint or signature: ec2, s3, dynamodb …)"),
        );
    }
    let actions = names(&f, "action", errs).iter().map(|a| Glob::text(a)).collect();
    Some(BodyMatcher::JsonRpc {
        method: Some(Glob::text(&format!("aws:{}", service.to_ascii_lowercase()))),
        tools: actions,
    })
}

pub(crate) fn sql(f: &Fields<'_>, errs: &mut Errors) -> Option<BodyMatcher> {
    let list = f.str_or_strs("sql", errs);
    if list.is_empty() {
        errs.push(
            &f.at("sql"),
            "name at least one statement class: read, write, ddl, other, role, copy or procedural",
        );
    }
    let mut classes = Vec::new();
    for (p, s) in list {
        match sql_class(s) {
            Some(c) if !classes.contains(&c) => classes.push(c),
            Some(_) => {}
            None => errs.push(
                &p,
                format!("unknown SQL class {s:?} (expected read, write, ddl, other, role, copy or procedural)"),
            ),
        }
    }
    Some(BodyMatcher::Sql(classes))
}

/// Reads `body = { … }` at `path`.
pub(crate) fn read(v: &Value, path: &KeyPath, errs: &mut Errors) -> Option<BodyMatcher> {
    let f = Fields::new(as_table(v, path, errs)?, path.clone(), KINDS, errs);
    let present: Vec<&str> = KINDS.iter().copied().filter(|k| f.has(k)).collect();
    match present.as_slice() {
        [] => {
            errs.push(path, "needs exactly one of json, graphql, jsonrpc, sql or aws");
            None
        }
        [kind] => {
            let (v, p) = (f.value(kind)?, f.at(kind));
            match *kind {
                "json" => json(v, &p, errs),
                "graphql" => graphql(v, &p, errs),
                "jsonrpc" => jsonrpc(v, &p, errs),
                "aws" => aws(v, &p, errs),
                _ => sql(&f, errs),
            }
        }
        many => {
            errs.push(
                path,
                format!(
                    "exactly one kind of body matcher per rule, found {}",
                    many.join(" and ")
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        for ok in ["", "/", "/a", "/a~0b/~1c", "/0"] {
            assert!(valid_pointer(ok), "{ok}");
        }
        for bad in ["a", "/a~", "/a~2", "~0"] {
            assert!(!valid_pointer(bad), "{bad}");
        }
    }
}
