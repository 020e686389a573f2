//! Defer mode (`on_hold = "defer"`): for agents whose HTTP client cannot wait for people, the
//! approve stage answers at once — `428 Precondition Required` with the approval's id, its
//! dashboard link and `Retry-After` — and the cards go out as usual. The identical request
//! (same digest: method, URL, every forwarded header in order, body) retried after the approval
//! passes once within the rule's `defer_window`; a different request is a new approval; a
//! denied or expired one is refused (403) for the window.
//!
//! Agents poll their own approval at `http://airlock.internal/approvals/{id}` through the proxy:
//! the gateway answers it itself with `{"state": …}`, and only to the agent that created it.

use airlock_approvals::{Deferred, HeldRule, HoldRequest, Hub};
use airlock_channels::HeldRequest;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::answer::{DECISION_HEADER, answer, full};
use crate::conn::Conn;
use crate::decide::Decided;
use crate::facts::Inbound;
use crate::hold::{approved, forwarding, refuse_held};
use crate::record::{Stop, audit_unavailable};
use crate::upstream::UpBody;

/// The host name the gateway answers itself (never dialed): the agents' status endpoint.
pub const STATUS_HOST: &str = "airlock.internal";
/// Seconds an agent is asked to wait before retrying a deferred request.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The defer window when every held rule defers (the shortest); `None` holds the connection.
pub(crate) fn window(rules: &[HeldRule]) -> Option<u64> {
    rules
        .iter()
        .map(|r| r.spec.defer_secs)
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().min())
}

/// Answers a deferred request: passes it (once approved), refuses it (denied, expired) or
/// answers 428 for its approval, holding a new one when none is pending.
pub(crate) async fn settle<B>(
    conn: &Conn,
    req: Inbound<B>,
    d: Decided,
    hub: &Hub,
    held: HeldRequest,
    rules: Vec<HeldRule>,
    window: u64,
) -> Result<(Inbound<B>, Decided), Stop> {
    let why = d.decision.reason.clone();
    let digest = airlock_channels::card::digest(&held);
    let unavailable = |e: airlock_approvals::HubError| {
        let reason = format!("{why}; {e}");
        refuse_held(conn, &req, &d, StatusCode::SERVICE_UNAVAILABLE, reason)
    };
    let id = match hub.deferred(&held.agent, &digest, window).await {
        Err(e) => return Err(unavailable(e)),
        Ok(Deferred::Pass { id }) => {
            let d = approved(d, format!("approved (approval {id}); the deferred request passes once"));
            let detail = serde_json::json!({ "approval": id, "deferred": true, "forwarding": true });
            forwarding(conn, &req, &d, detail).await?;
            return Ok((req, d));
        }
        Ok(Deferred::Refused { id, state }) => {
            let reason = format!("{why}; approval {id} is {state}, so it is denied");
            return Err(refuse_held(conn, &req, &d, StatusCode::FORBIDDEN, reason));
        }
        Ok(Deferred::Pending { id }) => id,
        Ok(Deferred::Fresh) => {
            // A new approval: its slot is kept until it is decided or expires.
            let slot = match conn.state.deferred.acquire(&held.agent) {
                Ok(slot) => slot,
                Err(full) => {
                    let reason = format!("{why}; {full}");
                    return Err(refuse_held(conn, &req, &d, StatusCode::TOO_MANY_REQUESTS, reason));
                }
            };
            match hub.defer(HoldRequest { held, rules }, slot).await {
                Ok(id) => id,
                Err(e) => return Err(unavailable(e)),
            }
        }
    };
    Err(pending(conn, &req, &d, &id))
}

/// 428 for a deferred request whose approval `id` is pending, recorded like any answer.
fn pending<B>(conn: &Conn, req: &Inbound<B>, d: &Decided, id: &str) -> Stop {
    let state = &conn.state;
    let reason = format!(
        "{}; deferred: retry the identical request once approved",
        d.decision.reason
    );
    let mut ev = req.rec.event("request", &d.decision, d.rules.clone(), vec![]);
    ev.reason = format!("{reason} (approval {id})");
    ev.status = Some(428);
    crate::record::add_detail(&mut ev, serde_json::json!({ "approval": id, "deferred": true }));
    if state.audit.append(ev).is_err() {
        return audit_unavailable(state).into();
    }
    let body = serde_json::json!({
        "airlock": { "decision": "approve", "rule": d.decision.rule, "reason": reason },
        "approval": {
            "id": id,
            "state": "pending",
            "dashboard": format!("/dashboard/approvals/{id}"),
            "status": format!("http://{STATUS_HOST}/approvals/{id}"),
            "retry_after": RETRY_AFTER_SECS,
        }
    });
    let mut resp = json(StatusCode::PRECONDITION_REQUIRED, &body);
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    h.insert(DECISION_HEADER, HeaderValue::from_static("approve"));
    resp.into()
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<UpBody> {
    let mut resp = Response::new(full(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The agents' status endpoint: `GET http://airlock.internal/approvals/{id}` answers
/// `{"state": …}` for an approval this agent created, 404 for any other (unknown or another
/// agent's alike). `None`: the request is for some other host.
pub(crate) async fn status<B>(conn: &Conn, req: &Request<B>) -> Option<Response<UpBody>> {
    let host = conn
        .tunnel
        .as_ref()
        .map_or_else(|| req.uri().host().unwrap_or(""), |t| t.host.as_str());
    if !host.eq_ignore_ascii_case(STATUS_HOST) {
        return None;
    }
    let not_found = || answer(StatusCode::NOT_FOUND, "deny", None, "no such approval for this agent");
    let id = req.uri().path().strip_prefix("/approvals/").unwrap_or("");
    if req.method() != http::Method::GET || id.is_empty() || id.contains('/') {
        return Some(not_found());
    }
    let Some(approvals) = conn.state.approvals.as_ref() else {
        return Some(not_found());
    };
    Some(match approvals.hub.state_for_agent(id, &conn.agent.name).await {
        Ok(Some(state)) => json(StatusCode::OK, &serde_json::json!({ "state": state })),
        Ok(None) => not_found(),
        Err(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "deny",
            None,
            "the approvals store is unavailable",
        ),
    })
}
