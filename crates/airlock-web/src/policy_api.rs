//! `POST /api/v1/policy/reload` (control token): loads the config file again and swaps the
//! policy in, or answers 422 with why nothing changed.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::{ControlState, authorized, unauthorized};

pub(crate) fn routes() -> Router<ControlState> {
    Router::new()
        .route("/api/v1/policy/reload", post(reload))
        .route("/api/v1/status", get(status))
}

/// What `airlock status` prints: version, uptime, the policy in force, held approvals, channels.
async fn status(State(s): State<ControlState>, h: HeaderMap) -> Response {
    if !authorized(&s, &h) {
        return unauthorized();
    }
    let now = airlock_gateway::now_ms();
    let policy = s.gateway.policy();
    let sha = match &s.reload {
        Some(r) => r.config_sha256().await,
        None => String::new(),
    };
    let (held, channels, health, lease) = match &s.hub {
        Some(hub) => (
            hub.pending(1).await.map(|l| l.total).ok(),
            hub.channel_names(),
            hub.channel_health(),
            hub.lease_live(now),
        ),
        None => (Some(0), Vec::new(), Vec::new(), true),
    };
    // Every live replica sharing the store, with the config it runs (approvals configured).
    let replicas: Vec<serde_json::Value> = match &s.hub {
        Some(hub) => s
            .store
            .live_replicas(now as i64)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(id, sha)| serde_json::json!({ "id": id, "policy_sha256": sha, "this": id == hub.replica_id() }))
            .collect(),
        None => Vec::new(),
    };
    Json(serde_json::json!({
        "version": s.version,
        "replicas": replicas,
        "uptime_secs": now.saturating_sub(s.started_ms) / 1000,
        "policy": {
            "sha256": sha,
            "rules": policy.rules.len(),
            "default": policy.default.as_str(),
        },
        "approvals": {
            "configured": s.hub.is_some(),
            "pending": held,
            "channels": channels,
            "channel_health": health,
            "lease_live": lease,
        },
        "ready": s.gateway.audit.is_healthy(),
    }))
    .into_response()
}

async fn reload(State(s): State<ControlState>, h: HeaderMap) -> Response {
    if !authorized(&s, &h) {
        return unauthorized();
    }
    let Some(r) = s.reload.clone() else {
        let body = serde_json::json!({"error": "this control plane cannot reload its policy"});
        return (StatusCode::NOT_IMPLEMENTED, Json(body)).into_response();
    };
    match r.reload("control plane").await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}
