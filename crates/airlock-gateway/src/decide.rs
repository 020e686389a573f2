//! Stage 2, the decision: the pure core reads the facts (every reading, invariant 12) and says
//! allow, deny or approve with a reason. Stage 4, admission: an allowed or approved request
//! goes out only while the audit log is writable and within every matching rule's rate.

use std::sync::Arc;

use airlock_core::policy::{Action, Decision, Policy};
use http::StatusCode;

use crate::conn::{Conn, now_ms};
use crate::facts::Inbound;
use crate::metrics::Metrics;
use crate::record::{Record, Stop, audit_unavailable, deny};

/// The core's decision and the names of every rule that matched (for the audit record).
pub(crate) struct Decided {
    pub(crate) policy: Arc<Policy>,
    pub(crate) decision: Decision,
    pub(crate) rules: Vec<String>,
}

/// Evaluates the policy; a deny is answered and audited here.
pub(crate) fn decide<B>(conn: &Conn, req: &mut Inbound<B>) -> Result<Decided, Stop> {
    let state = &conn.state;
    let policy = req.policy.clone();
    let decision = policy.evaluate(&req.facts);
    req.rec.replay = Some(crate::record::replay_facts(&req.facts, &decision));
    let rules = decision.matched.iter().map(|&i| policy.rules[i].name.clone()).collect();
    let d = Decided {
        policy,
        decision,
        rules,
    };
    match d.decision.action {
        Action::Deny => {
            Metrics::inc(&state.metrics.denied);
            let ev = req.rec.event("request", &d.decision, d.rules.clone(), vec![]);
            Err(Stop::refused(
                state,
                ev,
                StatusCode::FORBIDDEN,
                "deny",
                d.decision.rule.as_deref(),
            ))
        }
        Action::Approve => {
            Metrics::inc(&state.metrics.approval_required);
            Ok(d)
        }
        Action::Allow => Ok(d),
    }
}

/// Checks the audit log is writable, then takes one from the rate of every matching rule that
/// has one (only these may cost a store round trip). A request refused anyway spends no rate.
pub(crate) async fn admit(conn: &Conn, rec: &Record, d: &Decided) -> Result<(), Stop> {
    let state = &conn.state;
    if !state.audit.is_healthy() {
        return Err(audit_unavailable(state).into());
    }
    for &i in &d.decision.matched {
        let Some(rate) = d.policy.rules[i].rate else {
            continue;
        };
        let name = &d.policy.rules[i].name;
        let (status, reason) = match state.limiter.take(i, name, &conn.agent.name, rate, now_ms()).await {
            Ok(true) => continue,
            Ok(false) => {
                Metrics::inc(&state.metrics.rate_limited);
                let why = format!(
                    "rate limit of rule \"{name}\" exceeded ({}/{}s)",
                    rate.count, rate.per_secs
                );
                (StatusCode::TOO_MANY_REQUESTS, why)
            }
            Err(unchecked) => {
                Metrics::inc(&state.metrics.rate_limit_unavailable);
                (StatusCode::SERVICE_UNAVAILABLE, format!("{unchecked}; refusing"))
            }
        };
        let refusal = deny(reason, Some(name.clone()));
        let ev = rec.event("request", &refusal, d.rules.clone(), vec![]);
        return Err(Stop::refused(state, ev, status, "deny", refusal.rule.as_deref()));
    }
    Ok(())
}
