//! The approvals JSON API for `airlock approvals …` (bearer control token). The terminal is
//! an operator surface: whoever holds the control token votes *as* a configured person, and
//! the vote is recorded with channel "cli".

use std::convert::Infallible;

use airlock_approvals::{Hub, VoteError};
use airlock_channels::token::Decision;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::{ControlState, authorized, unauthorized};

pub(crate) fn routes() -> Router<ControlState> {
    Router::new()
        .route("/api/v1/approvals", get(list))
        .route("/api/v1/approvals/{id}", get(show))
        .route("/api/v1/approvals/{id}/vote", post(vote))
        .route("/api/v1/events", get(events))
        .route("/api/v1/grants", get(grants))
        .route("/api/v1/grants/{id}", delete(revoke))
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({ "error": msg.to_string() }))).into_response()
}

/// The hub, or the answer to give when approvals are off or the caller is not authorized.
#[allow(clippy::result_large_err)] // built once per request; boxing buys nothing here
fn hub(s: &ControlState, h: &HeaderMap) -> Result<Hub, Response> {
    if !authorized(s, h) {
        return Err(unauthorized());
    }
    s.hub.clone().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "approvals are not configured (no [people] in the config)",
        )
    })
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// Most approvals one list answer carries; `not_shown` counts the rest.
const MAX_LIST: i64 = 1000;

/// `{"approvals": [...], "total", "not_shown", "order"}`. Pending requests come oldest first,
/// up to [`MAX_LIST`] by default, so one held request cannot be buried under newer ones; any
/// other state (or "all") is history, newest first, 50 by default.
async fn list(State(s): State<ControlState>, h: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let hub = match hub(&s, &h) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let state = q.state.filter(|s| s != "all");
    let listed = if state.as_deref() == Some("pending") {
        hub.pending(q.limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST)).await
    } else {
        hub.list_counted(state.as_deref(), q.limit.unwrap_or(50).clamp(1, MAX_LIST))
            .await
    };
    match listed {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn show(State(s): State<ControlState>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let hub = match hub(&s, &h) {
        Ok(h) => h,
        Err(r) => return r,
    };
    match hub.get(&id).await {
        Ok(Some(v)) => {
            let text = airlock_channels::render::terminal(&v.card, &v.status);
            let mut json = serde_json::to_value(&v).unwrap_or_default();
            json["terminal"] = text.into();
            Json(json).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no approval {id:?}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

#[derive(Deserialize)]
struct VoteBody {
    person: String,
    decision: Decision,
}

async fn vote(
    State(s): State<ControlState>,
    h: HeaderMap,
    Path(id): Path<String>,
    Json(b): Json<VoteBody>,
) -> Response {
    let hub = match hub(&s, &h) {
        Ok(h) => h,
        Err(r) => return r,
    };
    match hub.vote(&id, &b.person, b.decision, "cli").await {
        Ok(c) => Json(c).into_response(),
        Err(e @ VoteError::Unknown(_)) => error(StatusCode::NOT_FOUND, e),
        Err(e @ (VoteError::NotAPerson(_) | VoteError::Refused(_) | VoteError::NoGrant)) => {
            error(StatusCode::FORBIDDEN, e)
        }
        Err(e @ VoteError::Closed(_)) => error(StatusCode::CONFLICT, e),
        Err(e @ VoteError::Store(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Server-sent events: one `approval` event per change (`{"id", "state"}`).
async fn events(State(s): State<ControlState>, h: HeaderMap) -> Response {
    let hub = match hub(&s, &h) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let stream = BroadcastStream::new(hub.subscribe()).filter_map(|ev| async move {
        let ev = ev.ok()?;
        let data = serde_json::to_string(&ev).ok()?;
        Some(Ok::<_, Infallible>(Event::default().event("approval").data(data)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn grants(State(s): State<ControlState>, h: HeaderMap) -> Response {
    match hub(&s, &h) {
        Ok(hub) => Json(
            hub.grants()
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "id": g.id, "agent": g.agent, "rule": g.rule, "host": g.host,
                        "granted_by": g.granted_by, "approval": g.approval_id,
                        "created_ms": g.created_ms, "expires_ms": g.expires_ms,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct RevokeQuery {
    by: Option<String>,
}

async fn revoke(
    State(s): State<ControlState>,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Response {
    let hub = match hub(&s, &h) {
        Ok(h) => h,
        Err(r) => return r,
    };
    match hub.revoke_grant(&id, q.by.as_deref().unwrap_or("operator")).await {
        Ok(true) => Json(serde_json::json!({ "revoked": id })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no live grant {id:?}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
