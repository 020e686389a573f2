//! One statement (or batch), one decision: facts for the core, the hold through the approvals
//! hub, and the audit record. Nothing here decides: the core does.
//!
//! A statement is given to the core as a request to the database's name with its SQL classes
//! as the inspected body, and evaluated by the database rules alone (their own `Policy`), so
//! the evaluation, its fail-closed reading of unparsed text, grants and approvals are the ones
//! HTTP requests get.

use airlock_approvals::{HeldRule, HoldRequest, Verdict};
use airlock_channels::HeldRequest;
use airlock_core::audit::AuditEvent;
use airlock_core::facts::{Body, BodyFacts, RequestFacts, Scheme};
use airlock_core::policy::{Action, Decision};
use airlock_gateway::now_ms;
use sha2::{Digest, Sha256};

use crate::PgGateway;
use crate::classify::Statements;

/// What the relay does with a statement.
#[derive(Debug)]
pub(crate) enum Outcome {
    Forward,
    /// Refused: the rule (if any) and the reason, safe to show the agent.
    Refuse {
        rule: Option<String>,
        reason: String,
    },
}

/// One decision about `text` (already classified as `st`).
pub(crate) struct Ask<'a> {
    pub(crate) agent: &'a str,
    pub(crate) database: &'a str,
    pub(crate) text: &'a str,
    pub(crate) st: &'a Statements,
    /// Parse only prepares: an `approve` waits for the Bind that runs it.
    pub(crate) prepare_only: bool,
}

/// What the core is given for a statement by `agent` to `database`: a request to the
/// database's name whose inspected body is the statement's classes (also `policy explain`'s).
pub fn statement_facts(agent: &str, database: &str, st: &Statements) -> RequestFacts {
    let mut f = RequestFacts::new(agent, "SQL", Scheme::Https, database, 0, "/");
    f.body = Body::Inspected(BodyFacts {
        sql: st.classes.clone(),
        sql_unparsed: st.unparsed,
        ..BodyFacts::default()
    });
    f
}

fn facts(a: &Ask<'_>) -> RequestFacts {
    statement_facts(a.agent, a.database, a.st)
}

/// The statement's digest: what the audit records instead of the text of an unheld statement.
pub(crate) fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(crate) async fn decide(gw: &PgGateway, a: Ask<'_>) -> Outcome {
    let d = gw.policy.evaluate(&facts(&a));
    let mut detail = serde_json::json!({
        "database": a.database,
        "classes": a.st.classes,
        "unparsed": a.st.unparsed,
        "statements": a.st.count,
        "tables": a.st.tables,
        "digest": digest(a.text),
    });
    let outcome = match d.action {
        Action::Allow => Outcome::Forward,
        Action::Approve if a.prepare_only => Outcome::Forward,
        Action::Deny => Outcome::Refuse {
            rule: d.rule.clone(),
            reason: d.reason.clone(),
        },
        Action::Approve => {
            detail["statement"] = serde_json::Value::String(a.text.to_string());
            return hold(gw, &a, &d, detail).await;
        }
    };
    if a.prepare_only {
        detail["phase"] = "parse".into();
    }
    record(gw, &a, &d, &d.reason, detail, false).await.unwrap_or(outcome)
}

/// Appends the record; `Some(refusal)` when it cannot be written (nothing unaudited runs).
async fn record(
    gw: &PgGateway,
    a: &Ask<'_>,
    d: &Decision,
    reason: &str,
    detail: serde_json::Value,
    durable: bool,
) -> Option<Outcome> {
    let ev = AuditEvent {
        ts_ms: now_ms(),
        kind: "database".into(),
        agent: Some(a.agent.to_string()),
        method: Some("SQL".into()),
        host: Some(a.database.to_string()),
        path: None,
        rules: d.rule.iter().cloned().collect(),
        decision: d.action.as_str().into(),
        reason: reason.to_string(),
        secrets: vec![],
        status: None,
        bytes_in: 0,
        bytes_out: 0,
        latency_us: 0,
        detail: Some(detail),
    };
    let audit = &gw.gateway.audit;
    let ok = if durable {
        audit.append_durable(ev).await.is_ok()
    } else {
        audit.append(ev).is_ok()
    };
    (!ok).then(|| Outcome::Refuse {
        rule: None,
        reason: "the audit log cannot be written; refusing all statements".into(),
    })
}

async fn refuse(gw: &PgGateway, a: &Ask<'_>, d: &Decision, reason: String, detail: serde_json::Value) -> Outcome {
    let denied = Decision {
        action: Action::Deny,
        ..d.clone()
    };
    if let Some(o) = record(gw, a, &denied, &reason, detail, false).await {
        return o;
    }
    Outcome::Refuse {
        rule: d.rule.clone(),
        reason,
    }
}

/// The card's view of a statement: the database as the host, the SQL text as the body.
fn held_request(a: &Ask<'_>, port: u16) -> HeldRequest {
    let classes: Vec<String> = a.st.classes.iter().map(|c| format!("{c:?}").to_lowercase()).collect();
    HeldRequest {
        agent: a.agent.to_string(),
        method: "SQL".into(),
        scheme: "postgres".into(),
        host: a.database.to_string(),
        port,
        target: format!("/{}", a.database),
        headers: vec![
            ("content-type".into(), b"text/plain; charset=utf-8".to_vec()),
            ("x-airlock-sql-class".into(), classes.join(", ").into_bytes()),
            ("x-airlock-tables".into(), a.st.tables.join(", ").into_bytes()),
        ],
        body: bytes::Bytes::copy_from_slice(a.text.as_bytes()),
    }
}

async fn hold(gw: &PgGateway, a: &Ask<'_>, d: &Decision, mut detail: serde_json::Value) -> Outcome {
    let why = &d.reason;
    let state = &gw.gateway;
    let _slot = match state.held.acquire(a.agent) {
        Ok(slot) => slot,
        Err(full) => return refuse(gw, a, d, format!("{why}; {full}"), detail).await,
    };
    let Some(approvals) = state.approvals.clone() else {
        let reason = format!("{why}; no approvers are configured ([people] in the config), so it is denied");
        return refuse(gw, a, d, reason, detail).await;
    };
    if a.text.len() > approvals.max_body {
        let reason = format!("{why}; the statement is larger than approvals.max_body, and nothing is approved blind");
        return refuse(gw, a, d, reason, detail).await;
    }
    let rules = HeldRule::from_matched(&gw.policy, &d.matched);
    if rules.is_empty() {
        return refuse(gw, a, d, format!("{why}; the rule names no approvers"), detail).await;
    }
    let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    if let Some(grants) = approvals.hub.grant_for(a.agent, &names, a.database, now_ms()) {
        detail["grants"] = serde_json::json!(grants);
        let reason = format!("allowed by grant {} ({})", grants.join(", "), names.join(", "));
        return released(gw, a, d, reason, detail).await;
    }
    let port = gw.databases.get(a.database).map_or(0, |db| db.config.port);
    let held = held_request(a, port);
    if let Err(unshowable) = airlock_channels::card::showable(&held.headers, &held.body) {
        return refuse(
            gw,
            a,
            d,
            format!("{why}; {unshowable}, and nothing is approved blind"),
            detail,
        )
        .await;
    }
    if state.drain.is_draining() {
        return refuse(gw, a, d, format!("{why}; the gateway is stopping"), detail).await;
    }
    let ticket = match approvals.hub.hold(HoldRequest { held, rules }).await {
        Ok(t) => t,
        Err(e) => return refuse(gw, a, d, format!("{why}; {e}"), detail).await,
    };
    let id = ticket.id().to_string();
    detail["approval"] = id.clone().into();
    // The client's connection waits; if it goes away this task ends and the ticket is dropped.
    let reason = match ticket.wait_until(state.drain.draining()).await {
        Verdict::Approved { by } => {
            let reason = format!("approved by {} (approval {id})", by.join(", "));
            return released(gw, a, d, reason, detail).await;
        }
        Verdict::Denied { by } => format!("{why}; denied by {by} (approval {id})"),
        Verdict::Expired => format!("{why}; nobody decided before the timeout, so it is denied (approval {id})"),
        Verdict::Failed { reason } => format!("{why}; {reason}, so it is denied (approval {id})"),
    };
    refuse(gw, a, d, reason, detail).await
}

/// An approved (or granted) statement: its record is committed before it is forwarded.
async fn released(gw: &PgGateway, a: &Ask<'_>, d: &Decision, reason: String, mut detail: serde_json::Value) -> Outcome {
    detail["forwarding"] = true.into();
    let reason = format!("forwarding: {reason}");
    match record(gw, a, d, &reason, detail, true).await {
        Some(refused) => refused,
        None => Outcome::Forward,
    }
}
