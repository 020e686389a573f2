//! The audit record of one request, and the gateway's own refusals (written to the
//! audit log before they are sent).

use std::time::Instant;

use airlock_core::audit::AuditEvent;
use airlock_core::facts::{Body, RequestFacts};
use airlock_core::policy::{Action, Decision};
use http::{Response, StatusCode};

use crate::answer::answer;
use crate::conn::now_ms;
use crate::metrics::Metrics;
use crate::state::GatewayState;
use crate::upstream::UpBody;

/// What the audit record of this request says so far.
pub(crate) struct Record {
    pub(crate) agent: String,
    pub(crate) method: String,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) started: Instant,
    /// What `airlock policy test` replays later: the core's verdict and the facts it read
    /// beyond method, host and path (never bodies, header or query values). Set by the decision.
    pub(crate) replay: Option<serde_json::Value>,
}

impl Record {
    /// The record of a request to `host` (as claimed; the destination stage replaces it with
    /// the canonical host), its query values redacted.
    pub(crate) fn new(agent: &str, method: &str, host: String, target: &str) -> Record {
        Record {
            agent: agent.to_string(),
            method: method.to_string(),
            host,
            path: airlock_inspect::target::redact_query(target),
            started: Instant::now(),
            replay: None,
        }
    }

    pub(crate) fn event(&self, kind: &str, d: &Decision, rules: Vec<String>, secrets: Vec<String>) -> AuditEvent {
        AuditEvent {
            ts_ms: now_ms(),
            kind: kind.into(),
            agent: Some(self.agent.clone()),
            method: Some(self.method.clone()),
            host: Some(self.host.clone()),
            path: Some(self.path.clone()),
            rules,
            decision: d.action.as_str().into(),
            reason: d.reason.clone(),
            secrets,
            status: None,
            bytes_in: 0,
            bytes_out: 0,
            latency_us: self.started.elapsed().as_micros() as u64,
            detail: self.replay.as_ref().map(|r| serde_json::json!({ "replay": r })),
        }
    }
}

/// Adds `extra`'s keys to the record's detail (keeping the replay facts already there).
pub(crate) fn add_detail(ev: &mut AuditEvent, extra: serde_json::Value) {
    match (&mut ev.detail, extra) {
        (Some(serde_json::Value::Object(have)), serde_json::Value::Object(more)) => have.extend(more),
        (slot, extra) => *slot = Some(extra),
    }
}

/// The replay facts of a decided request: the verdict, where it went, and what the body
/// matchers saw (statement classes, operation and method names; no values).
pub(crate) fn replay_facts(f: &RequestFacts, d: &Decision) -> serde_json::Value {
    let body = match &f.body {
        Body::Empty => serde_json::json!("empty"),
        Body::Streamed => serde_json::json!("streamed"),
        Body::TooLarge => serde_json::json!("too_large"),
        Body::Inspected(b) => serde_json::json!({
            "json": !b.json.is_empty() || b.json_unread,
            "graphql": b.graphql, "jsonrpc": b.jsonrpc, "sql": b.sql, "sql_unparsed": b.sql_unparsed,
        }),
    };
    let mut r = serde_json::json!({
        "policy": d.action.as_str(), "scheme": f.scheme, "port": f.port, "body": body,
    });
    // Method overrides come from headers and query values the record does not keep.
    if f.methods.len() > 1 {
        r["methods"] = f.methods.iter().map(|m| m.value.clone()).collect();
    }
    r
}

/// Writes the record of a request the gateway answers itself; a failed write turns the
/// answer into 503 (fail closed: nothing unaudited happens, even a refusal is reported).
pub(crate) fn refuse(
    state: &GatewayState,
    mut ev: AuditEvent,
    status: StatusCode,
    decision: &str,
    rule: Option<&str>,
) -> Response<UpBody> {
    ev.status = Some(status.as_u16());
    let reason = ev.reason.clone();
    if state.audit.append(ev).is_err() {
        return audit_unavailable(state);
    }
    answer(status, decision, rule, &reason)
}

/// A request some stage answered itself (refused and audited): the pipeline stops with it.
/// Boxed: the stages' `Result`s stay small on the success path.
pub(crate) struct Stop(pub(crate) Box<Response<UpBody>>);

impl Stop {
    /// [`refuse`], as a stop.
    pub(crate) fn refused(
        state: &GatewayState,
        ev: AuditEvent,
        status: StatusCode,
        decision: &str,
        rule: Option<&str>,
    ) -> Stop {
        refuse(state, ev, status, decision, rule).into()
    }
}

impl From<Response<UpBody>> for Stop {
    fn from(r: Response<UpBody>) -> Stop {
        Stop(Box::new(r))
    }
}

pub(crate) fn deny(reason: String, rule: Option<String>) -> Decision {
    Decision {
        action: Action::Deny,
        rule,
        reason,
        matched: vec![],
        reading: None,
    }
}

/// 503 while the audit log cannot be written: nothing unaudited is forwarded.
pub(crate) fn audit_unavailable(state: &GatewayState) -> Response<UpBody> {
    Metrics::inc(&state.metrics.audit_unavailable);
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "deny",
        None,
        "the audit log cannot be written; refusing all requests",
    )
}

/// 502 for an allowed request whose upstream failed; the record says why. The request was
/// allowed, so a failed audit append here cannot un-send it — it is counted, not masked.
pub(crate) fn upstream_failed(
    state: &GatewayState,
    mut ev: airlock_core::audit::AuditEvent,
    reason: String,
    rule: Option<&str>,
) -> Response<UpBody> {
    Metrics::inc(&state.metrics.upstream_errors);
    ev.reason = reason;
    ev.status = Some(502);
    let resp = answer(StatusCode::BAD_GATEWAY, "allow", rule, &ev.reason);
    record_forwarded(state, ev);
    resp
}

/// The record of a request that went upstream: it cannot be un-sent, so its record is kept
/// even if the store failed while it was in flight (committed when the store returns).
pub(crate) fn record_forwarded(state: &GatewayState, ev: airlock_core::audit::AuditEvent) {
    if state.audit.record(ev).is_err() {
        Metrics::inc(&state.metrics.audit_unavailable);
    }
}

pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Refuses a tunnel before it carried a request (neither TLS nor HTTP, a ClientHello that
/// does not parse, no certificate for the host): counted and audited.
pub(crate) fn refuse_tunnel(state: &GatewayState, agent: &str, host: &str, reason: &str) {
    Metrics::inc(&state.metrics.tunnels_refused);
    tracing::info!(agent, host, reason, "tunnel refused");
    tunnel_event(state, agent, host, reason);
}

/// Why a removed agent's connection or database session is closed (audited, and answered
/// to a request on it).
pub const CUT: &str =
    "connection closed: agent removed by reload (it is no longer declared, or its token was reissued)";

/// Records that a connection of an agent removed by a reload of agents was closed.
pub(crate) fn connection_cut(state: &GatewayState, agent: &str, host: &str) {
    tracing::info!(agent, host, "{CUT}");
    tunnel_event(state, agent, host, CUT);
}

fn tunnel_event(state: &GatewayState, agent: &str, host: &str, reason: &str) {
    let kind = "tunnel";
    let ev = AuditEvent {
        ts_ms: now_ms(),
        kind: kind.into(),
        agent: Some(agent.into()),
        method: Some("CONNECT".into()),
        host: Some(host.into()),
        path: None,
        rules: vec![],
        decision: "deny".into(),
        reason: reason.into(),
        secrets: vec![],
        status: None,
        bytes_in: 0,
        bytes_out: 0,
        latency_us: 0,
        detail: None,
    };
    if state.audit.append(ev).is_err() {
        Metrics::inc(&state.metrics.audit_unavailable);
    }
}
