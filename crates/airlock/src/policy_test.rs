//! `airlock policy test` and `airlock policy diff`: what a policy change would do before it
//! goes live. `test` replays the audited facts of past requests (method, host, path, the body
//! matchers' readings and the verdict then — never bodies, header or query values) through the
//! config named by `--config`; `diff` compares two files and names the held approvals a reload
//! would refuse. Exit codes gate a pull request: 0 nothing changes, 1 something would, 2 the
//! policy is invalid or the history cannot be read.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use airlock_config::Config;
use airlock_core::audit::AuditEvent;
use airlock_core::facts::{Body, BodyFacts, GraphqlOp, JsonRpcCall, Reading, RequestFacts, Scheme};
use airlock_core::policy::{Action, BodyMatcher, Policy};
use airlock_inspect::request::{Head, head_facts};
use serde_json::{Value, json};

use crate::home::Home;

/// Examples kept per group of changes.
const EXAMPLES: usize = 3;

/// Exit 2 with the reason: the test could not be run.
fn cannot(why: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::from(2)
}

/// One past request as the audit log has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Past {
    pub ts_ms: u64,
    pub agent: String,
    pub method: String,
    pub host: String,
    pub path: String,
}

/// What replaying a record gave.
pub enum Replayed {
    /// The new policy says `now`; the policy then said `then`.
    Decided {
        then: Action,
        now: Action,
        rule: Option<String>,
    },
    /// Some rule that could apply reads what the record does not keep.
    Inexact,
}

/// The facts of a past request, rebuilt from its record; `None` when the record is not a
/// request the policy decided (refused before policy, a forwarding note, another kind).
fn facts_of(ev: &AuditEvent) -> Option<(RequestFacts, Action)> {
    if ev.kind != "request" {
        return None;
    }
    let detail = ev.detail.as_ref()?;
    if detail["forwarding"] == true {
        return None; // the same request's record follows
    }
    let r = &detail["replay"];
    let then = match r["policy"].as_str()? {
        "allow" => Action::Allow,
        "deny" => Action::Deny,
        "approve" => Action::Approve,
        _ => return None,
    };
    let scheme = if r["scheme"] == "http" {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let port = u16::try_from(r["port"].as_u64()?).ok()?;
    let head = Head {
        agent: ev.agent.as_deref()?,
        method: ev.method.as_deref()?,
        scheme,
        host: ev.host.as_deref()?,
        port,
        target: ev.path.as_deref()?,
        headers: &[],
        keep_headers: false,
    };
    let mut facts = head_facts(&head).ok()?;
    if let Some(ms) = r["methods"].as_array() {
        facts.methods = ms
            .iter()
            .map(|m| Reading {
                value: m.as_str().map(str::to_string),
                how: Some("recorded".into()),
            })
            .collect();
    }
    facts.body = match &r["body"] {
        Value::String(s) if s == "empty" => Body::Empty,
        Value::String(s) if s == "streamed" => Body::Streamed,
        Value::String(_) => Body::TooLarge,
        b => Body::Inspected(BodyFacts {
            json: vec![],
            json_unread: false,
            graphql: list(&b["graphql"], |o| GraphqlOp {
                kind: o["kind"].as_str().unwrap_or("unparsed").into(),
                name: o["name"].as_str().map(str::to_string),
                fields: strings(&o["fields"]),
            }),
            jsonrpc: list(&b["jsonrpc"], |c| JsonRpcCall {
                method: c["method"].as_str().unwrap_or_default().into(),
                tool: c["tool"].as_str().map(str::to_string),
                tool_unread: c["tool_unread"] == true,
            }),
            sql: strings(&b["sql"])
                .iter()
                .filter_map(|c| airlock_config::sql_class(c))
                .collect(),
            sql_unparsed: b["sql_unparsed"] == true,
        }),
    };
    Some((facts, then))
}

fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array().map(|a| a.iter().map(f).collect()).unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    list(v, |s| s.as_str().unwrap_or_default().to_string())
}

/// The new policy, and the same rules with everything the audit cannot replay taken out: a
/// request one of those wider rules matches may depend on what the record does not keep.
pub struct Replayer {
    policy: Policy,
    sieve: Policy,
    /// Per rule: reads header or query values, or JSON body values.
    lossy: Vec<bool>,
    /// Per rule: reads the body at all.
    body: Vec<bool>,
}

impl Replayer {
    pub fn new(policy: &Policy) -> Replayer {
        let mut lossy = Vec::new();
        let mut body = Vec::new();
        let wide = policy
            .rules
            .iter()
            .map(|r| {
                lossy
                    .push(!r.query.is_empty() || !r.headers.is_empty() || matches!(r.body, Some(BodyMatcher::Json(_))));
                body.push(r.body.is_some());
                let mut w = r.clone();
                w.query.clear();
                w.headers.clear();
                w.body = None;
                w
            })
            .collect();
        Replayer {
            policy: policy.clone(),
            sieve: Policy::new(policy.default, wide),
            lossy,
            body,
        }
    }

    pub fn replay(&self, ev: &AuditEvent) -> Option<Replayed> {
        let (facts, then) = facts_of(ev)?;
        let inspected = matches!(facts.body, Body::Inspected(_) | Body::Empty);
        let unsure = self
            .sieve
            .evaluate(&facts)
            .matched
            .iter()
            .any(|&i| self.lossy[i] || (self.body[i] && !inspected));
        if unsure {
            return Some(Replayed::Inexact);
        }
        let d = self.policy.evaluate(&facts);
        Some(Replayed::Decided {
            then,
            now: d.action,
            rule: d.rule,
        })
    }
}

/// Changes grouped by (then, now, deciding rule).
#[derive(Default)]
pub struct Report {
    pub replayed: u64,
    pub inexact: u64,
    pub inexact_examples: Vec<Past>,
    pub changes: BTreeMap<(&'static str, &'static str, String), (u64, Vec<Past>)>,
}

impl Report {
    pub fn add(&mut self, ev: &AuditEvent, r: Replayed) {
        self.replayed += 1;
        let past = || Past {
            ts_ms: ev.ts_ms,
            agent: ev.agent.clone().unwrap_or_default(),
            method: ev.method.clone().unwrap_or_default(),
            host: ev.host.clone().unwrap_or_default(),
            path: ev.path.clone().unwrap_or_default(),
        };
        match r {
            Replayed::Inexact => {
                self.inexact += 1;
                if self.inexact_examples.len() < EXAMPLES {
                    self.inexact_examples.push(past());
                }
            }
            Replayed::Decided { then, now, .. } if then == now => {}
            Replayed::Decided { then, now, rule } => {
                let key = (then.as_str(), now.as_str(), rule.unwrap_or_else(|| "(default)".into()));
                let group = self.changes.entry(key).or_default();
                group.0 += 1;
                if group.1.len() < EXAMPLES {
                    group.1.push(past());
                }
            }
        }
    }

    pub fn changed(&self) -> u64 {
        self.changes.values().map(|g| g.0).sum()
    }

    fn to_json(&self, since_ms: u64) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|((from, to, rule), (count, examples))| {
                json!({ "from": from, "to": to, "rule": rule, "count": count, "examples": examples })
            })
            .collect();
        json!({
            "since_ms": since_ms, "replayed": self.replayed, "changed": self.changed(),
            "inexact": self.inexact, "inexact_examples": self.inexact_examples, "changes": changes,
        })
    }
}

fn when(ms: u64) -> String {
    airlock_channels::render::utc_datetime(ms)
}

fn show(p: &Past) {
    say!(
        "      {}  {}  {} {}{}",
        when(p.ts_ms),
        p.agent,
        p.method,
        p.host,
        p.path
    );
}

/// `airlock policy test [--since D] [--json]`.
pub async fn policy_test(cfg: &Path, since: &str, as_json: bool) -> ExitCode {
    let Some(secs) = airlock_config::parse_duration(since) else {
        return cannot(format!(
            "--since {since:?}: expected a duration such as \"7d\", \"12h\""
        ));
    };
    let home = match Home::load(cfg) {
        Ok(h) => h,
        Err(e) => return cannot(e),
    };
    let store = match home.store.open().await {
        Ok(s) => s,
        Err(e) => return cannot(format!("{e:#}")),
    };
    let since_ms = (crate::home::now_ms().max(0) as u64).saturating_sub(secs.saturating_mul(1000));
    let replayer = Replayer::new(&home.config.policy);
    let mut report = Report::default();
    let mut after = 0;
    loop {
        let page = match store.audit_page(after, 2_000).await {
            Ok(p) => p,
            Err(e) => return cannot(format!("cannot read the audit log: {e}")),
        };
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            let Ok(ev) = serde_json::from_slice::<AuditEvent>(&row.body) else {
                return cannot(format!(
                    "audit record {} is corrupted: run airlock audit verify",
                    row.seq
                ));
            };
            if ev.ts_ms < since_ms {
                continue;
            }
            if let Some(r) = replayer.replay(&ev) {
                report.add(&ev, r);
            }
        }
    }
    if as_json {
        println!(
            "{}",
            airlock_channels::text::json_visible(&report.to_json(since_ms).to_string())
        );
    } else {
        print_report(&report, &home.config, since_ms);
    }
    if report.changed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_report(report: &Report, c: &Config, since_ms: u64) {
    say!(
        "replayed {} requests since {} through {}",
        report.replayed,
        when(since_ms),
        c.path.display()
    );
    if report.inexact > 0 {
        say!(
            "  {} could not be replayed exactly: a rule that may apply reads header, query or JSON body values, which the audit does not keep",
            report.inexact
        );
        report.inexact_examples.iter().for_each(show);
    }
    if report.changes.is_empty() {
        say!("nothing would change");
        return;
    }
    say!("{} would be decided differently:", report.changed());
    for ((from, to, rule), (count, examples)) in &report.changes {
        say!("  {from} → {to}, by rule {rule}: {count}");
        examples.iter().for_each(show);
    }
}

/// `airlock policy diff OLD NEW`: rules added, removed and changed, and the approvals held now
/// (in OLD's store) that loading NEW would refuse. Exit 0 when the policies are the same.
pub async fn policy_diff(old: &Path, new: &Path) -> ExitCode {
    let (old_home, new_cfg) = match (Home::load(old), Config::load(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) => return cannot(e),
        (_, Err(e)) => return cannot(e),
    };
    let (added, removed, changed) = crate::reload::diff(&old_home.config.policy, &new_cfg.policy);
    let names = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    say!("rules added:   {}", names(&added));
    say!("rules removed: {}", names(&removed));
    say!("rules changed: {}", names(&changed));
    let kept = |name: &str| {
        new_cfg
            .policy
            .rules
            .iter()
            .any(|r| r.name == name && r.action != Action::Deny)
    };
    match held(&old_home).await {
        Ok(held) => {
            let refused: Vec<_> = held
                .iter()
                .filter(|(_, _, rules)| !rules.iter().any(|r| kept(r)))
                .collect();
            say!(
                "held approvals: {}, of which a reload would refuse {}",
                held.len(),
                refused.len()
            );
            for (id, what, rules) in refused {
                say!("  {id}  {what}  (held by {})", rules.join(", "));
            }
        }
        Err(e) => say!("held approvals: unknown ({e:#})"),
    }
    if added.is_empty() && removed.is_empty() && changed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Pending approvals: id, "agent METHOD host", the names of the rules holding them.
async fn held(home: &Home) -> anyhow::Result<Vec<(String, String, Vec<String>)>> {
    let store = home.store.open().await?;
    let rows = store.pending_oldest_first(10_000).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let card: Value = serde_json::from_slice(&row.card).unwrap_or_default();
            let rules = list(&card["rules"], |r| r["name"].as_str().unwrap_or_default().to_string());
            let what = format!("{} {} {}", row.agent, card["method"].as_str().unwrap_or("?"), row.host);
            (row.id, what, rules)
        })
        .collect())
}
