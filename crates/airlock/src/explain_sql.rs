//! `airlock policy explain --database NAME --sql TEXT`: the decision for a statement as the
//! database gateway would take it — the same classifier (PostgreSQL's own parser) and the same
//! database rules — for the whole text (a Simple Query is decided whole: any statement's class
//! can trigger a rule) and for each statement of it.

use std::path::Path;
use std::process::ExitCode;

use airlock_config::Config;
use airlock_core::policy::Decision;
use airlock_postgres::classify::{Statements, classify, each};
use anyhow::bail;

use crate::home::Home;

fn classes(st: &Statements) -> String {
    let mut c: Vec<String> = st.classes.iter().map(|c| format!("{c:?}").to_lowercase()).collect();
    if st.unparsed {
        c.push("(did not parse: read restrictively)".into());
    }
    c.join(", ")
}

fn tables(st: &Statements) -> String {
    if st.tables.is_empty() {
        "(none)".into()
    } else {
        st.tables.join(", ")
    }
}

fn decision(c: &Config, agent: &str, database: &str, st: &Statements) -> Decision {
    c.database_policy
        .evaluate(&airlock_postgres::statement_facts(agent, database, st))
}

fn show(d: &Decision, indent: &str) {
    say!("{indent}decision: {}", d.action.as_str());
    say!("{indent}rule:     {}", d.rule.as_deref().unwrap_or("(none: default)"));
    say!("{indent}reason:   {}", d.reason);
}

pub fn explain(cfg: &Path, database: &str, sql: &str, agent: &str) -> anyhow::Result<ExitCode> {
    let home = Home::load(cfg)?;
    let c = &home.config;
    let Some(db) = c.databases.iter().find(|d| d.name == database) else {
        let known: Vec<&str> = c.databases.iter().map(|d| d.name.as_str()).collect();
        bail!("database {database:?} is not declared (declared: {known:?}); add a [databases.{database}] table");
    };
    say!(
        "database: {} ({} database {:?} on {}:{})",
        db.name,
        db.kind.as_str(),
        db.database,
        db.host,
        db.port
    );
    if !agent.is_empty()
        && !c
            .agent(agent)
            .is_some_and(|a| a.databases.iter().any(|d| d == database))
    {
        say!("login:    refused: agent {agent:?} does not list {database:?} in its databases = [...]");
    }
    let whole = classify(sql);
    say!("sql:      {sql}");
    say!("statements: {}", whole.count);
    say!("classes:  {}", classes(&whole));
    say!("tables:   {}", tables(&whole));
    show(&decision(c, agent, database, &whole), "");
    // The gateway decides a multi-statement Simple Query as one; each part is shown too.
    if whole.count > 1
        && let Some(parts) = each(sql)
    {
        for (i, (text, st)) in parts.iter().enumerate() {
            say!("statement {}: {text}", i + 1);
            say!("  classes:  {}", classes(st));
            say!("  tables:   {}", tables(st));
            show(&decision(c, agent, database, st), "  ");
        }
    }
    Ok(ExitCode::SUCCESS)
}
