//! `airlock policy explain`: the decision for a request written on the command line, built by
//! the same canonicalisation stage as the gateway's (`airlock_inspect::request`), with every
//! reading it considered and the one that decided.

use std::path::Path;
use std::process::ExitCode;

use airlock_config::Config;
use airlock_core::facts::{Body, RequestFacts, Scheme};
use airlock_core::inject::RequestView;
use airlock_core::policy::{Action, Decision};
use airlock_inspect::request::{Head, body_state, head_facts, plan_body, settle_methods};
use anyhow::{Context, bail};

use crate::home::Home;

/// A request written by hand: on the command line, or as a policy's `[[tests]]` case.
pub struct Written<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub agent: &'a str,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// What the gateway would do with it.
pub enum Verdict {
    /// Refused before policy as malformed (400).
    Malformed(String),
    /// Refused before policy: a placeholder toward a host its secret is not bound to.
    Blocked(String),
    Decided(Decision),
}

impl Verdict {
    /// The action and deciding rule, as a `[[tests]]` case states them.
    pub fn action(&self) -> (Action, Option<&str>) {
        match self {
            Verdict::Malformed(_) | Verdict::Blocked(_) => (Action::Deny, None),
            Verdict::Decided(d) => (d.action, d.rule.as_deref()),
        }
    }
}

/// A judged request, with what `explain` shows of it.
pub struct Judged {
    /// `scheme://host:port/target`, canonical host.
    pub shown: String,
    pub facts: Option<RequestFacts>,
    pub verdict: Verdict,
    /// Secret names and the slots they would be injected into.
    pub inject: Vec<String>,
}

/// The decision for `w` under `c`, by the gateway's own canonicalisation and core.
pub fn judge(c: &Config, w: &Written<'_>) -> anyhow::Result<Judged> {
    let uri: http::Uri = w.url.parse().with_context(|| format!("not a URL: {}", w.url))?;
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => bail!("the URL must start with http:// or https://"),
    };
    let host = airlock_core::host::canonical_host(uri.host().context("the URL has no host")?)?;
    let port = uri.port_u16().unwrap_or(if scheme == Scheme::Https { 443 } else { 80 });
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let shown = format!("{scheme:?}://{host}:{port}{target}");
    let hv: Vec<(&str, &[u8])> = w.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    let head = Head {
        agent: w.agent,
        method: w.method,
        scheme,
        host: &host,
        port,
        target: &target,
        headers: &hv,
        keep_headers: true,
    };
    let mut facts = match head_facts(&head) {
        Ok(f) => f,
        Err(bad) => {
            return Ok(Judged {
                shown,
                facts: None,
                verdict: Verdict::Malformed(bad.to_string()),
                inject: vec![],
            });
        }
    };
    let content_type = w
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    let plan = plan_body(&mut facts, &c.policy, content_type);
    let whole = w.body.as_deref().unwrap_or_default();
    settle_methods(&mut facts, &plan, content_type, Some(whole));
    facts.body = body_state(&plan, content_type, Some(whole), &facts.query);
    let granted = c.agent(w.agent).map(|a| a.secrets.clone()).unwrap_or_default();
    let view = RequestView {
        scheme,
        host: &host,
        target: &target,
        headers: &hv,
        body: w.body.as_deref(),
    };
    let (verdict, inject) = match c.secrets.plan(&granted, &view) {
        Err(refusal) => (Verdict::Blocked(refusal.reason(&host)), vec![]),
        Ok(plan) => (
            Verdict::Decided(c.policy.evaluate(&facts)),
            plan.into_iter()
                .map(|i| format!("secret \"{}\" into {:?}", i.name, i.slot))
                .collect(),
        ),
    };
    Ok(Judged {
        shown,
        facts: Some(facts),
        verdict,
        inject,
    })
}

pub fn policy_explain(
    cfg: &Path,
    method: &str,
    url: &str,
    agent: &str,
    headers: &[String],
    body: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let home = Home::load(cfg)?;
    let c = &home.config;
    let mut hdrs = Vec::new();
    for h in headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header {h:?}: expected \"Name: value\""))?;
        hdrs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let body = match body {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?),
        None => None,
    };
    let j = judge(
        c,
        &Written {
            method,
            url,
            agent,
            headers: hdrs,
            body,
        },
    )?;
    if let Some(facts) = &j.facts {
        say!(
            "request:  {} {} (normalized path {})",
            facts.method(),
            j.shown,
            facts.path()
        );
        print_readings(facts);
    }
    match &j.verdict {
        Verdict::Malformed(bad) => {
            say!("decision: deny (400, before policy)");
            say!("reason:   {bad}");
        }
        Verdict::Blocked(reason) => {
            say!("decision: deny (before policy)");
            say!("reason:   {reason}");
        }
        Verdict::Decided(d) => {
            say!("decision: {}", d.action.as_str());
            say!("rule:     {}", d.rule.as_deref().unwrap_or("(none: default)"));
            say!("reason:   {}", d.reason);
            say!("decided by: {}", d.reading.as_deref().unwrap_or("the request as sent"));
            if d.matched.is_empty() {
                say!("matched:  no rule");
            }
            for &i in &d.matched {
                let r = &c.policy.rules[i];
                say!("matched:  \"{}\" → {}", r.name, r.action.as_str());
            }
            for inj in &j.inject {
                say!("inject:   {inj}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the policy's own `[[tests]]`, one line per case; answers how many failed.
pub fn run_cases(c: &Config) -> anyhow::Result<usize> {
    let mut failed = 0;
    for t in &c.tests {
        let at = format!("{}:{}", c.path.display(), t.line.map_or("?".into(), |l| l.to_string()));
        let j = judge(
            c,
            &Written {
                method: &t.method,
                url: &t.url,
                agent: &t.agent,
                headers: t.headers.clone(),
                body: t.body.as_ref().map(|b| b.as_bytes().to_vec()),
            },
        )?;
        let (got, rule) = j.verdict.action();
        let rule_ok = t.rule.as_deref().is_none_or(|want| rule == Some(want));
        if got == t.expect && rule_ok {
            say!("ok      {at}: {}", t.name);
            continue;
        }
        failed += 1;
        let why = match &j.verdict {
            Verdict::Malformed(r) | Verdict::Blocked(r) => r.clone(),
            Verdict::Decided(d) => d.reason.clone(),
        };
        say!(
            "FAILED  {at}: {}: expected {}{}, got {} by {}: {why}",
            t.name,
            t.expect.as_str(),
            t.rule
                .as_deref()
                .map(|r| format!(" by rule \"{r}\""))
                .unwrap_or_default(),
            got.as_str(),
            rule.map(|r| format!("rule \"{r}\""))
                .unwrap_or_else(|| "no rule".into()),
        );
    }
    Ok(failed)
}

/// Every reading the policy considered: methods, paths, and what the body matchers saw.
fn print_readings(f: &RequestFacts) {
    for m in &f.methods {
        let shown = m.value.as_deref().unwrap_or("(any: could not be read)");
        say!("reading:  method {shown}{}", how(&m.how));
    }
    for p in &f.paths {
        say!("reading:  path {}{}", p.value, how(&p.how));
    }
    match &f.body {
        Body::Inspected(b) => {
            for (i, v) in b.json.iter().enumerate() {
                say!("reading:  JSON body #{} {v}", i + 1);
            }
            if b.json_unread {
                say!("reading:  JSON body partly unreadable (read restrictively)");
            }
            for op in &b.graphql {
                say!(
                    "reading:  GraphQL {} {}{:?}",
                    op.kind,
                    op.name.as_deref().map(|n| format!("{n} ")).unwrap_or_default(),
                    op.fields
                );
            }
            for c in &b.jsonrpc {
                let tool = match (&c.tool, c.tool_unread) {
                    (Some(t), _) => format!(" tool {t}"),
                    (None, true) => " tool (unreadable)".into(),
                    (None, false) => String::new(),
                };
                say!("reading:  JSON-RPC {}{tool}", c.method);
            }
            if !b.sql.is_empty() {
                let classes: Vec<String> = b.sql.iter().map(|c| format!("{c:?}").to_lowercase()).collect();
                let unparsed = if b.sql_unparsed {
                    " (some did not parse: read restrictively)"
                } else {
                    ""
                };
                say!("reading:  SQL {}{unparsed}", classes.join(", "));
            }
        }
        Body::TooLarge => say!("reading:  body not read whole (read restrictively)"),
        Body::Empty | Body::Streamed => {}
    }
}

fn how(h: &Option<String>) -> String {
    h.as_deref().map(|h| format!("  ({h})")).unwrap_or_default()
}
