//! The control plane, on its own listener: `/healthz` and `/metrics` for monitoring, and a
//! JSON API behind a bearer token. Agents never reach it (the sandbox only reaches the proxy).
#![forbid(unsafe_code)]

mod approvals_api;
mod callbacks;
pub mod dashboard;
mod oauth;
pub mod onecli;
mod policy_api;

use std::sync::Arc;

use airlock_core::audit::AuditEvent;
use airlock_gateway::GatewayState;
use airlock_store::Store;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct ControlState {
    pub gateway: Arc<GatewayState>,
    pub store: Store,
    /// SHA-256 of the control token (the token itself lives in the data directory, mode 0600).
    pub token_hash: Vec<u8>,
    /// The approvals hub, when approvals are configured.
    pub hub: Option<airlock_approvals::Hub>,
    /// Reloads the policy from the config file (`POST /api/v1/policy/reload`).
    pub reload: Option<Arc<dyn PolicyReload>>,
    /// What `/api/v1/status` reports of this process: its version and when it started.
    pub version: String,
    pub started_ms: u64,
    /// The OneCLI-compatible API (`[compat.onecli]`), when configured.
    pub onecli: Option<Arc<onecli::OneCli>>,
    /// Reads agents and secrets from the store again, now (`POST /api/v1/identities/reload`).
    pub refresh_identities: Option<Refresh>,
}

/// Re-reads the gateway's agents and secrets from the store; done by the binary, which owns
/// the vault.
/// `Err` says why agents and secrets could not be read again; the previous ones stay in force.
pub type Refresh = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A policy reload, done by whoever owns the config file (the binary).
pub trait PolicyReload: Send + Sync {
    /// What changed (JSON), or why nothing did.
    fn reload<'a>(&'a self, by: &'a str) -> BoxFuture<'a, Result<serde_json::Value, String>>;

    /// The SHA-256 of the config file whose policy is in force.
    fn config_sha256(&self) -> BoxFuture<'_, String>;
}

pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/identities/reload", axum::routing::post(reload_identities))
        .merge(approvals_api::routes())
        .merge(callbacks::routes())
        .merge(policy_api::routes())
        .merge(oauth::routes())
        .merge(onecli::routes())
        .merge(dashboard::routes())
        .with_state(state)
}

/// Serves the control plane on an already-bound listener.
pub async fn serve(listener: TcpListener, state: ControlState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Liveness: the process serves its control plane. Whether it can serve requests is `/readyz`.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// How long `/readyz` waits for the store to answer.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness, for load balancers: 503 while the audit log cannot be written, the store does not
/// answer (requests are refused then) or this replica's lease has lapsed; 200 again by itself
/// once they recover, naming the policy in force.
async fn readyz(State(s): State<ControlState>) -> Response {
    if !s.gateway.audit.is_healthy() {
        return (StatusCode::SERVICE_UNAVAILABLE, "audit log unavailable\n").into_response();
    }
    if !s.store.reachable(READY_TIMEOUT).await {
        return (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n").into_response();
    }
    if let Some(hub) = &s.hub
        && !hub.lease_live(airlock_gateway::now_ms())
    {
        // Other replicas may be abandoning what this one holds: send new requests elsewhere.
        let why = "this replica's lease in the store has lapsed\n";
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    let policy = s.gateway.policy();
    (
        StatusCode::OK,
        format!(
            "ready: {} rules, default {}\n",
            policy.rules.len(),
            policy.default.as_str()
        ),
    )
        .into_response()
}

async fn metrics(State(s): State<ControlState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.gateway.metrics.render(),
    )
        .into_response()
}

/// `airlock agent add|rm` and `secret set|rm` call this after writing the store, so a running
/// gateway on SQLite (which has no change notifications) takes the change at once: a new
/// credential works, a removed one is refused, from the next request on.
async fn reload_identities(State(s): State<ControlState>, h: HeaderMap) -> Response {
    if !authorized(&s, &h) {
        return unauthorized();
    }
    match &s.refresh_identities {
        // A failed re-read is the operator's to hear about, not a success: the CLI exits non-zero.
        Some(refresh) => match refresh().await {
            Ok(()) => Json(serde_json::json!({"reloaded": true})).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"reloaded": false, "error": e})),
            )
                .into_response(),
        },
        None => (
            StatusCode::NOT_IMPLEMENTED,
            Json(serde_json::json!({"error": "this control plane cannot reload agents"})),
        )
            .into_response(),
    }
}

pub(crate) fn authorized(s: &ControlState, h: &HeaderMap) -> bool {
    let Some(token) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Comparing hashes keeps the comparison independent of the token's bytes.
    airlock_gateway::token_hash(token.trim()).as_slice() == s.token_hash.as_slice()
}

pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": "control token required (Authorization: Bearer …)"})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TailQuery {
    n: Option<i64>,
}

async fn audit(State(s): State<ControlState>, h: HeaderMap, Query(q): Query<TailQuery>) -> Response {
    if !authorized(&s, &h) {
        return unauthorized();
    }
    match s.store.audit_tail(q.n.unwrap_or(50).clamp(1, 1000)).await {
        Ok(rows) => {
            let out: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::from_slice::<AuditEvent>(&r.body)
                        .ok()
                        .and_then(|e| serde_json::to_value(e).ok())
                        .unwrap_or(serde_json::json!({"corrupted": true}));
                    v["seq"] = r.seq.into();
                    v["hash"] = hex::encode(&r.hash).into();
                    v
                })
                .collect();
            Json(out).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn agents(State(s): State<ControlState>, h: HeaderMap) -> Response {
    if !authorized(&s, &h) {
        return unauthorized();
    }
    match s.store.list_agents().await {
        Ok(rows) => Json(
            rows.iter()
                .map(|r| serde_json::json!({"name": r.name, "created_ms": r.created_ms}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
