//! The long poll for held requests and the decision endpoint. Only requests the configured
//! approver may decide are offered, and only while they are pending and not yet voted on by
//! them; a decision is that person's vote (channel "onecli-api"), under the same role, quorum
//! and digest rules as a click anywhere else.

use std::time::Duration;

use airlock_approvals::VoteError;
use airlock_channels::token::Decision;
use airlock_core::approval::Refused;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Scope, authorize};
use super::{configured, error, view};
use crate::ControlState;

/// How long a poll is held open when nothing is waiting (the SDK aborts at 35 s).
const POLL: Duration = Duration::from_secs(30);
/// Re-read at least this often while waiting: a request held by another replica may be
/// announced to this one only through the store.
const RECHECK: Duration = Duration::from_secs(2);
/// Most requests one poll answer carries.
const MAX_OFFERED: i64 = 100;
/// The vote's channel in the audit log and on the approval's record.
pub const CHANNEL: &str = "onecli-api";

#[allow(clippy::result_large_err)] // built once per request
fn approver(s: &ControlState) -> Result<(airlock_approvals::Hub, String), Response> {
    let api = configured(s)?;
    let none = |msg: &str| error(StatusCode::NOT_FOUND, json!({ "error": msg }));
    let Some(hub) = s.hub.clone() else {
        return Err(none("approvals are not configured (no [people] in the config)"));
    };
    match api.approver.clone() {
        Some(p) => Ok((hub, p)),
        None => Err(none("no approver is configured ([compat.onecli] approver)")),
    }
}

#[derive(Deserialize)]
pub(crate) struct PendingQuery {
    exclude: Option<String>,
}

/// At once when a request the approver may decide (and not excluded) is held; else when one
/// is, or after [`POLL`] with none.
pub(crate) async fn pending(State(s): State<ControlState>, h: HeaderMap, Query(q): Query<PendingQuery>) -> Response {
    if let Err(r) = configured(&s) {
        return r;
    }
    if let Err(r) = authorize(&s, &h, Scope::Approvals).await {
        return r;
    }
    let (hub, person) = match approver(&s) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let exclude: Vec<&str> = q.exclude.as_deref().unwrap_or("").split(',').map(str::trim).collect();
    let deadline = tokio::time::Instant::now() + POLL;
    // Subscribed before each read: a request held between the read and the wait still wakes it.
    let mut events = hub.subscribe();
    loop {
        let offered = match hub.pending_for(&person, MAX_OFFERED).await {
            Ok(list) => list,
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": e.to_string() })),
        };
        let rows: Vec<serde_json::Value> = offered
            .iter()
            .filter(|v| !exclude.contains(&v.card.id.as_str()))
            .map(view::request)
            .collect();
        let now = tokio::time::Instant::now();
        if !rows.is_empty() || now >= deadline {
            let timeout = offered
                .iter()
                .map(|v| v.card.expires_ms.saturating_sub(v.card.created_ms) / 1000)
                .min()
                .unwrap_or(POLL.as_secs());
            return axum::Json(json!({ "requests": rows, "timeoutSeconds": timeout })).into_response();
        }
        let wait = (deadline - now).min(RECHECK);
        // Any change (or a lagged receiver) is a reason to read again; so is the timer.
        let _ = tokio::time::timeout(wait, events.recv()).await;
    }
}

#[derive(Deserialize)]
struct DecisionBody {
    decision: serde_json::Value,
}

pub(crate) async fn decision(
    State(s): State<ControlState>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = configured(&s) {
        return r;
    }
    if let Err(r) = authorize(&s, &h, Scope::Approvals).await {
        return r;
    }
    let (hub, person) = match approver(&s) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(b) = serde_json::from_slice::<DecisionBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            json!({ "error": "expected a JSON object {\"decision\": \"approve\" | \"deny\"}" }),
        );
    };
    let d = match b.decision.as_str() {
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        _ => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": "decision must be \"approve\" or \"deny\"" }),
            );
        }
    };
    let gone = |state: &str| error(StatusCode::GONE, json!({ "error": "approval_expired", "state": state }));
    match hub.vote(&id, &person, d, CHANNEL).await {
        Ok(_) => axum::Json(json!({ "success": true })).into_response(),
        Err(VoteError::Unknown(_)) => error(StatusCode::NOT_FOUND, json!({ "error": "approval_not_found" })),
        Err(VoteError::Closed(state)) => gone(&state),
        Err(VoteError::Refused(Refused::Expired)) => gone("expired"),
        Err(e @ (VoteError::Refused(_) | VoteError::NotAPerson(_) | VoteError::NoGrant)) => {
            error(StatusCode::FORBIDDEN, json!({ "error": e.to_string() }))
        }
        Err(e @ VoteError::Store(_)) => error(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": e.to_string() })),
    }
}
