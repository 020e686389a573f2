//! `approve` rules: hold the exact request, ask people, and hand back the very bytes that
//! were shown and hashed — only after they said yes (invariants 5 and 6).

use airlock_approvals::{HeldRule, HoldRequest, Verdict};
use airlock_channels::HeldRequest;
use airlock_core::facts::Body as BodyState;
use airlock_core::policy::{Action, Decision};
use http::{StatusCode, header};

use crate::body::{AgentBody, Prefetched, read_whole};
use crate::conn::{Conn, now_ms, strip_hop_by_hop};
use crate::decide::Decided;
use crate::facts::{Inbound, scan};
use crate::metrics::Metrics;
use crate::record::{Stop, audit_unavailable, deny};

/// Stage 3: an `approve` decision holds the request until people decide; anything else passes.
/// On approval (or a grant) the request comes back with its whole body — the bytes that were
/// shown and hashed — and the plan rescanned over them.
pub(crate) async fn settle<B: AgentBody>(
    conn: &Conn,
    req: Inbound<B>,
    d: Decided,
) -> Result<(Inbound<B>, Decided), Stop> {
    if d.decision.action != Action::Approve {
        return Ok((req, d));
    }
    hold(conn, req, d).await
}

pub(crate) fn refuse_held<B>(conn: &Conn, req: &Inbound<B>, d: &Decided, status: StatusCode, reason: String) -> Stop {
    let state = &conn.state;
    Metrics::inc(&state.metrics.denied);
    let refusal = deny(reason, d.decision.rule.clone());
    let ev = req.rec.event("request", &refusal, d.rules.clone(), vec![]);
    Stop::refused(state, ev, status, "deny", refusal.rule.as_deref())
}

/// 503 with `Retry-After`: the gateway stopped while the request was held, so it was never
/// forwarded; asked again, a restarted gateway (or another replica) holds it anew.
fn stopping<B>(conn: &Conn, req: &Inbound<B>, d: &Decided, reason: String) -> Stop {
    let mut stop = refuse_held(conn, req, d, StatusCode::SERVICE_UNAVAILABLE, reason);
    stop.0.headers_mut().insert(
        header::RETRY_AFTER,
        http::HeaderValue::from(crate::drain::RETRY_AFTER_SECS),
    );
    stop
}

async fn hold<B: AgentBody>(conn: &Conn, mut req: Inbound<B>, d: Decided) -> Result<(Inbound<B>, Decided), Stop> {
    let state = &conn.state;
    let why = &d.decision.reason;
    // The agent's slot, freed however the hold ends (decided, expired, agent gone).
    let _slot = match state.held.acquire(&conn.agent.name) {
        Ok(slot) => slot,
        Err(full) => {
            let reason = format!("{why}; {full}");
            return Err(refuse_held(conn, &req, &d, StatusCode::TOO_MANY_REQUESTS, reason));
        }
    };
    let Some(approvals) = state.approvals.clone() else {
        let reason = format!("{why}; no approvers are configured ([people] in the config), so it is denied");
        return Err(refuse_held(conn, &req, &d, StatusCode::FORBIDDEN, reason));
    };
    if matches!(req.facts.body, BodyState::TooLarge) {
        let reason =
            format!("{why}; the body could not be read whole or inspected, and a request is never approved blind");
        return Err(refuse_held(conn, &req, &d, StatusCode::FORBIDDEN, reason));
    }
    let pre = std::mem::replace(&mut req.body, Prefetched::Empty);
    let body = match read_whole(pre, approvals.max_body).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            let reason = format!(
                "{why}; the body is larger than approvals.max_body ({} bytes), and a request is never approved blind",
                approvals.max_body
            );
            return Err(refuse_held(conn, &req, &d, StatusCode::PAYLOAD_TOO_LARGE, reason));
        }
        Err(e) => {
            let reason = format!("could not read the request body: {e}");
            return Err(refuse_held(conn, &req, &d, StatusCode::BAD_REQUEST, reason));
        }
    };
    req.body = if body.is_empty() {
        Prefetched::Empty
    } else {
        Prefetched::Full(body.clone())
    };
    // The earlier scan saw only a prefix; the held body is scanned whole.
    req.plan = scan(conn, &req.rec, &req.facts, &req.target, &req.parts, &req.body)?;
    // What is shown and hashed is what goes out: connection-level headers are dropped now,
    // not after the approval.
    let websocket = req.websocket();
    strip_hop_by_hop(&mut req.parts.headers, websocket);
    req.parts.headers.remove(header::HOST);

    let held_rules = HeldRule::from_matched(&d.policy, &d.decision.matched);
    if held_rules.is_empty() {
        let reason = format!("{why}; the rule names no approvers");
        return Err(refuse_held(conn, &req, &d, StatusCode::FORBIDDEN, reason));
    }
    let names: Vec<String> = held_rules.iter().map(|r| r.name.clone()).collect();
    if let Some(grants) = approvals
        .hub
        .grant_for(&req.facts.agent, &names, &req.facts.host, now_ms())
    {
        let reason = format!("allowed by grant {} ({})", grants.join(", "), names.join(", "));
        let d = approved(d, reason);
        let detail = serde_json::json!({ "grants": grants, "forwarding": true });
        forwarding(conn, &req, &d, detail).await?;
        return Ok((req, d));
    }
    let held = HeldRequest {
        agent: req.facts.agent.clone(),
        method: req.parts.method.as_str().to_string(),
        scheme: if req.facts.scheme == airlock_core::facts::Scheme::Https {
            "https".into()
        } else {
            "http".into()
        },
        host: req.facts.host.clone(),
        port: req.facts.port,
        target: req.target.clone(),
        headers: req
            .parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.clone(),
    };
    // What no surface can show whole (an encoding we cannot decode, a decoded body past the
    // bound, binary data past the hex view) is never put before people to approve.
    if let Err(unshowable) = airlock_channels::card::showable(&held.headers, &held.body) {
        let reason = format!("{why}; {unshowable}, and a request is never approved blind");
        return Err(refuse_held(conn, &req, &d, StatusCode::FORBIDDEN, reason));
    }
    if state.drain.is_draining() {
        return Err(stopping(conn, &req, &d, format!("{why}; the gateway is stopping")));
    }
    if let Some(window) = crate::defer::window(&held_rules) {
        return crate::defer::settle(conn, req, d, &approvals.hub, held, held_rules, window).await;
    }
    let ticket = match approvals
        .hub
        .hold(HoldRequest {
            held,
            rules: held_rules,
        })
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("{why}; {e}");
            return Err(refuse_held(conn, &req, &d, StatusCode::SERVICE_UNAVAILABLE, reason));
        }
    };
    let id = ticket.id().to_string();
    // The agent's connection stays open while people decide; if it goes away, dropping the
    // ticket withdraws the approval.
    // A stopping gateway abandons what it holds: nothing held is forwarded without its
    // approval, and the agent is told to ask again (a restarted gateway or a replica answers).
    // An agent removed by a reload while its request is held loses it: the hold is abandoned,
    // and whatever people decided, nothing is forwarded for an agent no longer in force.
    let stop = async {
        tokio::select! {
            () = state.drain.draining() => {}
            () = state.revoked(conn.who.clone()) => {}
        }
    };
    let verdict = ticket.wait_until(stop).await;
    if !conn.in_force() {
        let reason = format!("{why}; {}, so it is not forwarded (approval {id})", crate::record::CUT);
        return Err(refuse_held(conn, &req, &d, StatusCode::FORBIDDEN, reason));
    }
    let (status, reason) = match verdict {
        Verdict::Approved { by } => {
            let reason = format!("approved by {} (approval {id})", by.join(", "));
            let d = approved(d, reason);
            forwarding(
                conn,
                &req,
                &d,
                serde_json::json!({ "approval": id, "forwarding": true }),
            )
            .await?;
            return Ok((req, d));
        }
        Verdict::Denied { by } => (StatusCode::FORBIDDEN, format!("{why}; denied by {by} (approval {id})")),
        Verdict::Expired => (
            StatusCode::FORBIDDEN,
            format!("{why}; nobody decided before the timeout, so it is denied (approval {id})"),
        ),
        Verdict::Failed { reason } if state.drain.is_draining() => {
            let reason = format!("{why}; the gateway is stopping, so it was not forwarded ({reason}, approval {id})");
            return Err(stopping(conn, &req, &d, reason));
        }
        Verdict::Failed { reason } => (
            StatusCode::FORBIDDEN,
            format!("{why}; {reason}, so it is denied (approval {id})"),
        ),
    };
    Err(refuse_held(conn, &req, &d, status, reason))
}

/// Commits the record of a released request before it goes upstream: a crash after the send
/// leaves the request in the chain, next to the votes and the decision that released it
/// (committed with the vote). The request's usual record follows when its response is done.
/// A record that cannot be committed in time refuses the request (503): nothing released
/// goes out unrecorded.
pub(crate) async fn forwarding<B>(
    conn: &Conn,
    req: &Inbound<B>,
    d: &Decided,
    detail: serde_json::Value,
) -> Result<(), Stop> {
    let state = &conn.state;
    let mut ev = req.rec.event("request", &d.decision, d.rules.clone(), vec![]);
    ev.reason = format!("forwarding: {}", d.decision.reason);
    crate::record::add_detail(&mut ev, detail);
    match state.audit.append_durable(ev).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "a released request was not forwarded: its record is not committed");
            Err(audit_unavailable(state).into())
        }
    }
}

/// The decision an approval or a grant turns the hold into.
pub(crate) fn approved(d: Decided, reason: String) -> Decided {
    Decided {
        policy: d.policy,
        decision: Decision {
            action: Action::Approve,
            rule: d.decision.rule,
            reason,
            matched: d.decision.matched,
            reading: d.decision.reading,
        },
        rules: d.rules,
    }
}
