//! `airlock policy explain`: the decision for a request written on the command line, built by
//! the same canonicalisation stage as the gateway's (`airlock_inspect::request`), with every
//! reading it considered and the one that decided.

use std::path::Path;
use std::process::ExitCode;

use airlock_core::facts::{Body, RequestFacts, Scheme};
use airlock_core::inject::RequestView;
use airlock_inspect::request::{Head, body_state, head_facts, plan_body, settle_methods};
use anyhow::{Context, bail};

use crate::home::Home;

/// One line of output. The URL may come from an agent's log, and paths and body readings are
/// decoded: every line goes through the cards' one_line, so ESC, C1 controls, bidi overrides
/// and decoded newlines are shown as `<U+XXXX>` / spaces instead of reaching the terminal.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", airlock_channels::text::one_line(&format!($($arg)*)))
    };
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
    let uri: http::Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => bail!("the URL must start with http:// or https://"),
    };
    let host = airlock_core::host::canonical_host(uri.host().context("the URL has no host")?)?;
    let port = uri.port_u16().unwrap_or(if scheme == Scheme::Https { 443 } else { 80 });
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut hdrs = Vec::new();
    for h in headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header {h:?}: expected \"Name: value\""))?;
        hdrs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let body_bytes = match body {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?),
        None => None,
    };
    let hv: Vec<(&str, &[u8])> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    let head = Head {
        agent,
        method,
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
            say!("decision: deny (400, before policy)");
            say!("reason:   {bad}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let content_type = hdrs.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
    let plan = plan_body(&mut facts, &c.policy, content_type);
    let whole = body_bytes.as_deref().unwrap_or_default();
    settle_methods(&mut facts, &plan, content_type, Some(whole));
    facts.body = body_state(&plan, content_type, Some(whole), &facts.query);

    say!(
        "request:  {} {scheme:?}://{host}:{port}{target} (normalized path {})",
        facts.method(),
        facts.path()
    );
    print_readings(&facts);
    let granted = c.agent(agent).map(|a| a.secrets.clone()).unwrap_or_default();
    let view = RequestView {
        scheme,
        host: &host,
        target: &target,
        headers: &hv,
        body: body_bytes.as_deref(),
    };
    if let Err(refusal) = c.secrets.plan(&granted, &view) {
        say!("decision: deny (before policy)");
        say!("reason:   {}", refusal.reason(&host));
        return Ok(ExitCode::SUCCESS);
    }
    let d = c.policy.evaluate(&facts);
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
    if let Ok(plan) = c.secrets.plan(&granted, &view) {
        for inj in plan {
            say!("inject:   secret \"{}\" into {:?}", inj.name, inj.slot);
        }
    }
    Ok(ExitCode::SUCCESS)
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
