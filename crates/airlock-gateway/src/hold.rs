//! `approve` rules: hold the exact request, ask people, and hand back the very bytes that
//! were shown and hashed — only after they said yes (invariants 5 and 6).

use airlock_approvals::{HeldRule, HoldRequest, Verdict};
use airlock_channels::HeldRequest;
use airlock_core::facts::{Body as BodyState, RequestFacts};
use airlock_core::inject::{Injection, Refusal, RequestView};
use airlock_core::policy::{Action, Decision};
use bytes::Bytes;
use http::{Response, StatusCode, header};

use crate::body::{Prefetched, read_whole};
use crate::conn::{Conn, now_ms, strip_hop_by_hop};
use crate::metrics::Metrics;
use crate::record::{Record, deny, refuse};
use crate::upstream::UpBody;

pub(crate) enum Held {
    /// Approved, or covered by a grant: forward exactly this body with these headers.
    Forward {
        body: Bytes,
        plan: Vec<Injection>,
        decision: Decision,
    },
    Refused(Response<UpBody>),
}

pub(crate) struct Ask<'a> {
    pub(crate) conn: &'a Conn,
    pub(crate) rec: &'a Record,
    pub(crate) facts: &'a RequestFacts,
    pub(crate) decision: &'a Decision,
    pub(crate) rules: &'a [String],
    pub(crate) target: &'a str,
    pub(crate) websocket: bool,
}

impl Ask<'_> {
    fn refuse(&self, status: StatusCode, reason: String) -> Held {
        let state = &self.conn.state;
        Metrics::inc(&state.metrics.denied);
        let d = deny(reason, self.decision.rule.clone());
        let ev = self.rec.event("request", &d, self.rules.to_vec(), vec![]);
        Held::Refused(refuse(state, ev, status, "deny", d.rule.as_deref()))
    }
}

pub(crate) async fn hold(ask: Ask<'_>, parts: &mut http::request::Parts, pre: Prefetched) -> Held {
    let state = &ask.conn.state;
    let why = &ask.decision.reason;
    let Some(approvals) = state.approvals.clone() else {
        return ask.refuse(
            StatusCode::FORBIDDEN,
            format!("{why}; no approvers are configured ([people] in the config), so it is denied"),
        );
    };
    if matches!(ask.facts.body, BodyState::TooLarge) {
        return ask.refuse(
            StatusCode::FORBIDDEN,
            format!("{why}; the body could not be read whole or inspected, and a request is never approved blind"),
        );
    }
    let body = match read_whole(pre, approvals.max_body).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return ask.refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{why}; the body is larger than approvals.max_body ({} bytes), and a request is never approved blind",
                    approvals.max_body
                ),
            );
        }
        Err(e) => return ask.refuse(StatusCode::BAD_REQUEST, format!("could not read the request body: {e}")),
    };
    // The earlier scan saw only a prefix; the held body is scanned whole.
    let header_view: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let view = RequestView {
        scheme: ask.facts.scheme,
        host: &ask.facts.host,
        target: ask.target,
        headers: &header_view,
        body: (!body.is_empty()).then_some(&body[..]),
    };
    let plan = match state.secrets.plan(&ask.conn.agent.secrets, &view) {
        Ok(p) => p,
        Err(refusal) => {
            let exfil = matches!(refusal, Refusal::Exfiltration { .. });
            Metrics::inc(if exfil {
                &state.metrics.exfiltration
            } else {
                &state.metrics.denied
            });
            let ev = ask.rec.event(
                if exfil { "exfiltration" } else { "request" },
                &deny(refusal.reason(&ask.facts.host), None),
                vec![],
                vec![],
            );
            return Held::Refused(refuse(state, ev, StatusCode::FORBIDDEN, "deny", None));
        }
    };
    drop(header_view);
    // What is shown and hashed is what goes out: connection-level headers are dropped now,
    // not after the approval.
    strip_hop_by_hop(&mut parts.headers, ask.websocket);
    parts.headers.remove(header::HOST);

    let held_rules: Vec<HeldRule> = ask
        .decision
        .matched
        .iter()
        .map(|&i| &state.policy.rules[i])
        .filter(|r| r.action == Action::Approve)
        .filter_map(|r| {
            Some(HeldRule {
                name: r.name.clone(),
                reason: r
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("rule \"{}\" requires human approval", r.name)),
                spec: r.approval.clone()?,
            })
        })
        .collect();
    if held_rules.is_empty() {
        return ask.refuse(StatusCode::FORBIDDEN, format!("{why}; the rule names no approvers"));
    }
    let names: Vec<String> = held_rules.iter().map(|r| r.name.clone()).collect();
    if let Some(grants) = approvals
        .hub
        .grant_for(&ask.facts.agent, &names, &ask.facts.host, now_ms())
    {
        return Held::Forward {
            body,
            plan,
            decision: Decision {
                action: Action::Approve,
                rule: ask.decision.rule.clone(),
                reason: format!("allowed by grant {} ({})", grants.join(", "), names.join(", ")),
                matched: ask.decision.matched.clone(),
            },
        };
    }
    let held = HeldRequest {
        agent: ask.facts.agent.clone(),
        method: ask.facts.method.clone(),
        scheme: if ask.facts.scheme == airlock_core::facts::Scheme::Https {
            "https".into()
        } else {
            "http".into()
        },
        host: ask.facts.host.clone(),
        port: ask.facts.port,
        target: ask.target.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.clone(),
    };
    let ticket = match approvals
        .hub
        .hold(HoldRequest {
            held,
            rules: held_rules,
        })
        .await
    {
        Ok(t) => t,
        Err(e) => return ask.refuse(StatusCode::SERVICE_UNAVAILABLE, format!("{why}; {e}")),
    };
    let id = ticket.id().to_string();
    // The agent's connection stays open while people decide; if it goes away, dropping the
    // ticket withdraws the approval.
    match ticket.wait().await {
        Verdict::Approved { by } => Held::Forward {
            body,
            plan,
            decision: Decision {
                action: Action::Approve,
                rule: ask.decision.rule.clone(),
                reason: format!("approved by {} (approval {id})", by.join(", ")),
                matched: ask.decision.matched.clone(),
            },
        },
        Verdict::Denied { by } => ask.refuse(StatusCode::FORBIDDEN, format!("{why}; denied by {by} (approval {id})")),
        Verdict::Expired => ask.refuse(
            StatusCode::FORBIDDEN,
            format!("{why}; nobody decided before the timeout, so it is denied (approval {id})"),
        ),
        Verdict::Failed { reason } => ask.refuse(
            StatusCode::FORBIDDEN,
            format!("{why}; {reason}, so it is denied (approval {id})"),
        ),
    }
}
