//! airlock's proxy. It gathers facts, asks the core, and carries out the answer; it
//! decides nothing itself.
#![forbid(unsafe_code)]

mod answer;
mod body;
mod conn;
pub mod credentials;
mod decide;
mod facts;
mod forward;
mod handle;
pub mod held_cap;
mod hold;
mod intercept;
pub mod limit;
pub mod metrics;
mod outbound;
mod proxy;
mod record;
mod response;
mod rewind;
pub mod state;
pub mod upstream;
mod websocket;

#[cfg(test)]
mod stages_tests;

pub use conn::now_ms;
pub use proxy::{serve, serve_agent_socket};
pub use state::{Agent, Approvals, GatewayState, Identities, Limits, token_hash};

use airlock_core::audit::AuditEvent;

/// Refuses a tunnel before it carried a request (neither TLS nor HTTP, a ClientHello that
/// does not parse, no certificate for the host): counted and audited.
pub(crate) fn refuse_tunnel(state: &GatewayState, agent: &str, host: &str, reason: &str) {
    metrics::Metrics::inc(&state.metrics.tunnels_refused);
    tracing::info!(agent, host, reason, "tunnel refused");
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
        metrics::Metrics::inc(&state.metrics.audit_unavailable);
    }
}
