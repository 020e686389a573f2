//! `[[rules]]`.

use airlock_core::glob::{Glob, HostPattern};
use airlock_core::policy::{Action, ApprovalSpec, BodyMatcher, Rate, Rule};
use toml::Value;

use crate::addr::parse_duration;
use crate::body;
use crate::error::Errors;
use crate::raw::{Fields, as_str, single_line, valid_token};
use crate::secrets::{array_of_tables, host_pattern};

const KEYS: &[&str] = &[
    "name",
    "hosts",
    "methods",
    "paths",
    "agents",
    "query",
    "headers",
    "body",
    "aws",
    "action",
    "reason",
    "rate",
    "approvers",
    "quorum",
    "timeout",
    "grant",
    "on_hold",
    "defer_window",
    "databases",
    "sql",
];
/// What a database rule may not name: it is about statements, not HTTP requests.
const HTTP_KEYS: &[&str] = &["hosts", "methods", "paths", "query", "headers", "body"];
const APPROVAL_KEYS: &[&str] = &["approvers", "quorum", "timeout", "grant", "on_hold", "defer_window"];

/// How long an approved deferred request may be retried (once) when `defer_window` is not given.
pub const DEFAULT_DEFER_WINDOW_SECS: u64 = 600;

pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// `key = { name = "glob", … }` as (name, glob) pairs; `header` checks and lower-cases the names.
fn pairs(f: &Fields<'_>, key: &str, header: bool, errs: &mut Errors) -> Vec<(String, Glob)> {
    let Some(t) = f.table(key, errs) else { return vec![] };
    let path = f.at(key);
    let mut out = Vec::new();
    for (name, v) in t {
        let p = path.key(name);
        if header && !valid_token(name) {
            errs.push(&p, format!("{name:?} is not a valid header name"));
        } else if name.is_empty() {
            errs.push(&p, "a query parameter name must not be empty");
        }
        if let Some(s) = as_str(v, &p, errs) {
            let name = if header {
                name.to_ascii_lowercase()
            } else {
                name.clone()
            };
            out.push((name, Glob::text(s)));
        }
    }
    out
}

pub(crate) fn duration(f: &Fields<'_>, key: &str, errs: &mut Errors) -> Option<u64> {
    let s = f.str(key, errs)?;
    match parse_duration(s) {
        Some(0) => {
            errs.push(&f.at(key), "must be longer than 0s");
            None
        }
        Some(secs) => Some(secs),
        None => {
            errs.push(
                &f.at(key),
                format!("bad duration {s:?} (expected e.g. \"90s\", \"5m\", \"1h\")"),
            );
            None
        }
    }
}

/// The approval fields; `required` when the action is approve (approvers must be given).
fn approval(f: &Fields<'_>, required: bool, errs: &mut Errors) -> Option<ApprovalSpec> {
    let approvers = f.strs("approvers", errs);
    if required && approvers.is_empty() {
        errs.push(
            &f.at("approvers"),
            "an approve rule needs approvers: the roles whose members may decide, e.g. [\"owner\"]",
        );
    }
    for (p, s) in &approvers {
        if s.is_empty() || !single_line(s) {
            errs.push(p, "a role name must be non-empty text on one line");
        }
    }
    let quorum = match f.int("quorum", errs) {
        None => 1,
        Some(q) => match u32::try_from(q) {
            Ok(q) if q >= 1 => q,
            _ => {
                errs.push(&f.at("quorum"), format!("{q} is not a quorum: it must be at least 1"));
                1
            }
        },
    };
    let timeout_secs = duration(f, "timeout", errs).unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout_secs > MAX_TIMEOUT_SECS {
        errs.push(&f.at("timeout"), "at most 24h: a held request cannot wait longer");
    }
    let grant_secs = duration(f, "grant", errs);
    Some(ApprovalSpec {
        approvers: approvers.into_iter().map(|(_, s)| s.to_string()).collect(),
        quorum,
        timeout_secs,
        grant_secs,
        defer_secs: on_hold(f, errs),
    })
}

/// `on_hold = "wait" | "defer"` and `defer_window`: the window when deferred, else `None`.
fn on_hold(f: &Fields<'_>, errs: &mut Errors) -> Option<u64> {
    let window = duration(f, "defer_window", errs);
    if window.is_some_and(|w| w > MAX_TIMEOUT_SECS) {
        errs.push(&f.at("defer_window"), "at most 24h");
    }
    let defer = match f.str("on_hold", errs) {
        None | Some("wait") => false,
        Some("defer") => true,
        Some(other) => {
            errs.push(
                &f.at("on_hold"),
                format!("unknown on_hold {other:?} (expected \"wait\" or \"defer\")"),
            );
            false
        }
    };
    if !defer && f.has("defer_window") {
        errs.push(&f.at("defer_window"), "only valid with on_hold = \"defer\"");
    }
    defer.then(|| window.unwrap_or(DEFAULT_DEFER_WINDOW_SECS))
}

/// The names a rule may refer to.
pub(crate) struct Known<'a> {
    pub(crate) agents: &'a [String],
    pub(crate) databases: &'a [String],
}

/// `databases = [...]` and the top-level `sql = [...]`: `Some(databases)` for a database rule.
/// Its databases become the rule's hosts, so the core's host index selects it; database rules
/// live in a policy of their own, so no HTTP request ever meets one (nor a statement an HTTP rule).
fn database_part(
    f: &Fields<'_>,
    known: &Known<'_>,
    errs: &mut Errors,
) -> (Option<Vec<HostPattern>>, Option<BodyMatcher>) {
    if !f.has("databases") {
        if f.has("sql") {
            errs.push(
                &f.at("sql"),
                "only valid on a database rule (with databases = [...]); an HTTP rule uses body = { sql = [...] }",
            );
        }
        return (None, None);
    }
    for k in HTTP_KEYS.iter().filter(|k| f.has(k)) {
        errs.push(&f.at(k), "not valid on a database rule (one with databases = [...])");
    }
    let mut dbs = Vec::new();
    let list = f.strs("databases", errs);
    if list.is_empty() {
        errs.push(
            &f.at("databases"),
            "name at least one database (a [databases.NAME] entry)",
        );
    }
    for (p, d) in list {
        if !known.databases.iter().any(|x| x == d) {
            errs.push(
                &p,
                format!("database {d:?} is not declared (add a [databases.{d}] table)"),
            );
        } else {
            dbs.push(HostPattern::Exact(d.to_string()));
        }
    }
    let sql = if f.has("sql") { body::sql(f, errs) } else { None };
    (Some(dbs), sql)
}

fn rule(f: &Fields<'_>, known: &Known<'_>, names: &mut Vec<String>, errs: &mut Errors) -> Option<(Rule, bool)> {
    let agents = known.agents;
    let before = errs.list.len();
    let (databases, sql) = database_part(f, known, errs);
    let name = f.str("name", errs);
    match name {
        None if !f.has("name") => errs.push(&f.at("name"), "every rule needs a name"),
        None => {}
        Some(n) if n.trim().is_empty() || !single_line(n) => {
            errs.push(&f.at("name"), "a rule name must be non-empty text on one line");
        }
        Some(n) if names.iter().any(|x| x == n) => errs.push(&f.at("name"), format!("duplicate rule name {n:?}")),
        Some(n) => names.push(n.to_string()),
    }

    let mut hosts = Vec::new();
    for (p, h) in f.strs("hosts", errs) {
        match host_pattern(h, true) {
            Ok(hp) => hosts.push(hp),
            Err(e) => errs.push(&p, e),
        }
    }
    let mut methods = Vec::new();
    for (p, m) in f.strs("methods", errs) {
        if valid_token(m) {
            methods.push(m.to_ascii_uppercase());
        } else {
            errs.push(&p, format!("{m:?} is not an HTTP method"));
        }
    }
    let mut paths = Vec::new();
    for (p, s) in f.strs("paths", errs) {
        if s.starts_with('/') || s.starts_with('*') {
            paths.push(Glob::path(s));
        } else {
            errs.push(&p, format!("path glob {s:?} must start with \"/\" (or \"*\")"));
        }
    }
    let mut rule_agents = Vec::new();
    for (p, a) in f.strs("agents", errs) {
        if agents.iter().any(|x| x == a) {
            rule_agents.push(a.to_string());
        } else {
            errs.push(&p, format!("agent {a:?} is not declared (add an [[agents]] entry)"));
        }
    }
    let query = pairs(f, "query", false, errs);
    let headers = pairs(f, "headers", true, errs);
    let body = match (f.value("body"), f.value("aws")) {
        (Some(_), Some(_)) => {
            errs.push(&f.at("aws"), "one body matcher per rule: aws or body, not both");
            None
        }
        (None, Some(v)) => body::aws(v, &f.at("aws"), errs),
        (b, None) => b.and_then(|v| body::read(v, &f.at("body"), errs)),
    };

    let action = match f.str("action", errs) {
        None if !f.has("action") => {
            errs.push(&f.at("action"), "every rule needs an action: allow, deny or approve");
            None
        }
        None => None,
        Some(s) => {
            let a = Action::parse(s);
            if a.is_none() {
                errs.push(
                    &f.at("action"),
                    format!("unknown action {s:?} (expected allow, deny or approve)"),
                );
            }
            a
        }
    };
    let reason = f.str("reason", errs).map(str::to_string);
    if let Some(r) = &reason
        && (r.trim().is_empty() || !single_line(r))
    {
        errs.push(&f.at("reason"), "a reason must be non-empty text on one line");
    }
    let rate = f.str("rate", errs).and_then(|s| {
        let r = Rate::parse(s);
        if r.is_none() {
            errs.push(
                &f.at("rate"),
                format!("bad rate {s:?} (expected COUNT/UNIT, e.g. \"60/min\"; units s, min, hour, day)"),
            );
        }
        r
    });
    let approval = match action {
        Some(Action::Approve) => approval(f, true, errs),
        Some(other) => {
            for k in APPROVAL_KEYS.iter().filter(|k| f.has(k)) {
                errs.push(
                    &f.at(k),
                    format!(
                        "only valid on rules with action = \"approve\" (this one is \"{}\")",
                        other.as_str()
                    ),
                );
            }
            None
        }
        // The action is broken and reported; still check what the approval fields say.
        None => approval(f, false, errs),
    };

    if errs.list.len() > before {
        return None;
    }
    let is_db = databases.is_some();
    let (hosts, body) = match databases {
        Some(dbs) => (dbs, sql),
        None => (hosts, body),
    };
    Some((
        Rule {
            name: name?.to_string(),
            hosts,
            methods,
            paths,
            agents: rule_agents,
            query,
            headers,
            body,
            action: action?,
            reason,
            rate,
            approval,
        },
        is_db,
    ))
}

/// Reads `[[rules]]`: each valid rule with its index in the file and whether it is a database rule.
pub(crate) fn read(value: Option<&Value>, known: &Known<'_>, errs: &mut Errors) -> Vec<(usize, Rule, bool)> {
    let mut names = Vec::new();
    let mut rules = Vec::new();
    for (i, (path, t)) in array_of_tables(value, "rules", errs).into_iter().enumerate() {
        let f = Fields::new(t, path, KEYS, errs);
        if let Some((r, db)) = rule(&f, known, &mut names, errs) {
            rules.push((i, r, db));
        }
    }
    rules
}
