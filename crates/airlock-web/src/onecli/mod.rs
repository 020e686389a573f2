//! The OneCLI-compatible API (`[compat.onecli]`), so NanoClaw and other `@onecli-sh/sdk` clients
//! use airlock unchanged: agents and their container configuration (`provision` scope), held
//! requests and decisions (`approvals` scope), under `/v1/…` and the SDK 0.x prefix `/api/…`.
//!
//! Airlock's rules, not OneCLI's: a key is scoped and revocable (looked up on every call); an
//! agent created here gets no secrets and no rules of its own (the operator grants them in
//! `airlock.toml`, by glob); a decision is the configured approver's vote, counted like any other.

mod approvals;
mod auth;
mod time;
mod view;

use std::sync::Arc;

use airlock_core::audit::AuditEvent;
use airlock_store::{AgentRow, StoreError};
use airlock_vault::SecretBytes;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::ControlState;
pub use auth::Scope;
use auth::authorize;

/// Where the CA certificate is mounted in the container (the SDK mounts it read-only there).
pub const CA_CONTAINER_PATH: &str = "/run/airlock/ca.pem";

/// `(env name, placeholder)` of each secret the config grants an agent; `None` when no
/// `[[agents]]` entry (exact or glob) names it.
pub type Grants = Arc<dyn Fn(&str) -> Option<Vec<(String, String)>> + Send + Sync>;

/// What the OneCLI-compatible API needs from the gateway that serves it.
pub struct OneCli {
    /// `http://HOST:PORT`: the proxy as containers reach it.
    pub proxy_url: String,
    /// The `[people.*]` entry whose vote a decision is.
    pub approver: Option<String>,
    /// The local CA's certificate (PEM).
    pub ca_pem: String,
    /// The key agents' proxy credentials are derived from: the credential of an agent created
    /// here is HMAC-SHA256(key, name, creation time), so airlock keeps only its hash, as for any
    /// agent, and can still hand it out again before each container start.
    pub agent_key: SecretBytes,
    pub grants: Grants,
    /// Reloads the gateway's agents now, so a credential just issued is usable at once.
    pub refresh: crate::Refresh,
}

impl OneCli {
    /// The proxy credential of agent `name` created at `created_ms`.
    pub fn agent_token(&self, name: &str, created_ms: i64) -> SecretBytes {
        let token = derive_token(self.agent_key.expose(), name, created_ms);
        SecretBytes::new(token.into_bytes())
    }
}

/// URL-safe base64 (no padding) of HMAC-SHA256(key, "airlock onecli agent\0" name "\0" created_ms).
pub fn derive_token(key: &[u8], name: &str, created_ms: i64) -> String {
    use base64::Engine;
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(b"airlock onecli agent\0");
    mac.update(name.as_bytes());
    mac.update(b"\0");
    mac.update(created_ms.to_string().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub(crate) fn routes() -> Router<ControlState> {
    let mut r = Router::new();
    // `/v1` is SDK 2.x; `/api` is SDK 0.x and NanoClaw's health probe.
    for p in ["/v1", "/api"] {
        r = r
            .route(&format!("{p}/health"), get(health))
            .route(&format!("{p}/gateway-url"), get(gateway_url))
            .route(&format!("{p}/agents"), get(list_agents).post(create_agent))
            .route(&format!("{p}/container-config"), get(container_config))
            .route(&format!("{p}/approvals/pending"), get(approvals::pending))
            .route(&format!("{p}/approvals/{{id}}/decision"), post(approvals::decision));
    }
    r
}

pub(crate) fn error(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn unavailable(e: &StoreError) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": e.to_string() }))
}

/// The API when configured, else 404 (a gateway without `[compat.onecli]` has no such API).
#[allow(clippy::result_large_err)] // built once per request
fn configured(s: &ControlState) -> Result<Arc<OneCli>, Response> {
    s.onecli
        .clone()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, json!({ "error": "not_found" })))
}

async fn health(State(s): State<ControlState>) -> Response {
    if s.onecli.is_none() {
        return error(StatusCode::NOT_FOUND, json!({ "error": "not_found" }));
    }
    axum::Json(json!({
        "status": "ok",
        "version": s.version,
        "timestamp": time::iso8601(airlock_gateway::now_ms()),
    }))
    .into_response()
}

/// Where the approvals endpoints are: this same listener, as the caller reached it.
async fn gateway_url(State(s): State<ControlState>, h: HeaderMap) -> Response {
    if s.onecli.is_none() {
        return error(StatusCode::NOT_FOUND, json!({ "error": "not_found" }));
    }
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@'));
    match host {
        Some(host) => axum::Json(json!({ "url": format!("http://{host}") })).into_response(),
        None => error(StatusCode::BAD_REQUEST, json!({ "error": "a Host header is required" })),
    }
}

/// 1–50 of `a-z 0-9 -`, starting with a letter or digit (the SDK's rule).
fn valid_identifier(s: &str) -> bool {
    (1..=50).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().next().is_some_and(|b| b != b'-')
}

fn name_key(identifier: &str) -> String {
    format!("onecli_agent_name:{identifier}")
}

async fn list_agents(State(s): State<ControlState>, h: HeaderMap) -> Response {
    if let Err(r) = configured(&s) {
        return r;
    }
    if let Err(r) = authorize(&s, &h, Scope::Provision).await {
        return r;
    }
    let rows = match s.store.list_agents().await {
        Ok(rows) => rows,
        Err(e) => return unavailable(&e),
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name = match s.store.get_meta(&name_key(&r.name)).await {
            Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
            Err(e) => return unavailable(&e),
        };
        out.push(json!({
            "id": r.name,
            "name": name.unwrap_or_else(|| r.name.clone()),
            "identifier": r.name,
            "isDefault": false,
            "createdAt": time::iso8601(u64::try_from(r.created_ms).unwrap_or(0)),
        }));
    }
    axum::Json(out).into_response()
}

#[derive(Deserialize)]
struct CreateAgent {
    name: String,
    identifier: String,
    #[serde(rename = "parentIdentifier")]
    #[allow(dead_code)] // accepted for the SDK; airlock grants come from airlock.toml only
    parent_identifier: Option<String>,
}

/// `airlock agent add` over HTTP: issues the agent's proxy credential (201), or 409 when the
/// identifier already has one. The gateway reloads its agents before answering.
async fn create_agent(State(s): State<ControlState>, h: HeaderMap, body: Bytes) -> Response {
    let api = match configured(&s) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let caller = match authorize(&s, &h, Scope::Provision).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let bad = |msg: &str| error(StatusCode::BAD_REQUEST, json!({ "error": msg }));
    let Ok(req) = serde_json::from_slice::<CreateAgent>(&body) else {
        return bad("expected a JSON object {\"name\", \"identifier\"}");
    };
    if !valid_identifier(&req.identifier) {
        return bad("identifier: 1 to 50 of a-z 0-9 -, starting with a letter or digit");
    }
    if req.name.is_empty() || req.name.len() > 255 || req.name.chars().any(char::is_control) {
        return bad("name: 1 to 255 characters on one line");
    }
    let created_ms = airlock_gateway::now_ms() as i64;
    let token = api.agent_token(&req.identifier, created_ms);
    let row = AgentRow {
        name: req.identifier.clone(),
        token_hash: airlock_gateway::token_hash(&String::from_utf8_lossy(token.expose())).to_vec(),
        created_ms,
    };
    match s.store.add_agent(&row).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists { .. }) => {
            return error(StatusCode::CONFLICT, json!({ "error": "agent_already_exists" }));
        }
        Err(e) => return unavailable(&e),
    }
    if let Err(e) = s.store.set_meta(&name_key(&req.identifier), req.name.as_bytes()).await {
        tracing::warn!(error = %e, "the agent's display name was not stored; its identifier stands in");
    }
    if let Err(e) = (api.refresh)().await {
        // The agent is in the store; the gateway's next poll of the store loads it.
        tracing::warn!(error = %e, "the new agent is stored but the gateway could not load it yet");
    }
    audit_created(&s, &req.identifier, &caller, (api.grants)(&req.identifier).is_some());
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "id": req.identifier,
            "name": req.name,
            "identifier": req.identifier,
            "createdAt": time::iso8601(created_ms as u64),
        })),
    )
        .into_response()
}

fn audit_created(s: &ControlState, agent: &str, caller: &auth::Caller, declared: bool) {
    let ev = AuditEvent {
        ts_ms: airlock_gateway::now_ms(),
        kind: "admin".into(),
        agent: Some(agent.to_string()),
        method: None,
        host: None,
        path: None,
        rules: vec![],
        decision: "agent added".into(),
        reason: format!("agent created through the OneCLI API by {}", caller.describe()),
        secrets: vec![],
        status: None,
        bytes_in: 0,
        bytes_out: 0,
        latency_us: 0,
        detail: Some(json!({ "via": "onecli-api", "by": caller.describe(), "declared": declared })),
    };
    if s.gateway.audit.append(ev).is_err() {
        tracing::error!("audit log unavailable: an agent creation was not recorded");
    }
}

#[derive(Deserialize)]
struct ConfigQuery {
    agent: Option<String>,
}

/// What a container needs and nothing more: the proxy (with this agent's credential), the CA
/// for every common TLS stack, and the placeholders of the secrets the config grants it.
async fn container_config(State(s): State<ControlState>, h: HeaderMap, Query(q): Query<ConfigQuery>) -> Response {
    let api = match configured(&s) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = authorize(&s, &h, Scope::Provision).await {
        return r;
    }
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            json!({ "error": "agent not found", "code": "AGENT_NOT_FOUND" }),
        )
    };
    let Some(agent) = q.agent.filter(|a| valid_identifier(a)) else {
        return not_found();
    };
    let row = match s.store.list_agents().await {
        Ok(rows) => rows.into_iter().find(|r| r.name == agent),
        Err(e) => return unavailable(&e),
    };
    let Some(row) = row else {
        return not_found();
    };
    let token = api.agent_token(&row.name, row.created_ms);
    let token = String::from_utf8_lossy(token.expose()).into_owned();
    if airlock_gateway::token_hash(&token).as_slice() != row.token_hash.as_slice() {
        // Issued by `airlock agent add`: airlock holds only its hash and cannot hand it out.
        return error(
            StatusCode::CONFLICT,
            json!({
                "error": format!("agent {agent:?} was added with `airlock agent add`, so its credential cannot be handed out; remove it (`airlock agent rm {agent}`) and let the client create it"),
                "code": "AGENT_NOT_PROVISIONED",
            }),
        );
    }
    let granted = (api.grants)(&agent);
    let mut warnings = Vec::new();
    if granted.is_none() {
        warnings.push(format!(
            "no [[agents]] entry names {agent:?}: it has no secrets, and only rules for every agent apply"
        ));
    }
    let proxy = api
        .proxy_url
        .replacen("http://", &format!("http://{agent}:{token}@"), 1);
    let mut env = serde_json::Map::new();
    for k in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        env.insert(k.into(), proxy.clone().into());
    }
    for k in [
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        env.insert(k.into(), CA_CONTAINER_PATH.into());
    }
    env.insert("NODE_USE_ENV_PROXY".into(), "1".into());
    for (name, placeholder) in granted.unwrap_or_default() {
        env.insert(name, placeholder.into());
    }
    let mut out = json!({
        "env": env,
        "caCertificate": api.ca_pem,
        "caCertificateContainerPath": CA_CONTAINER_PATH,
    });
    if !warnings.is_empty() {
        out["warnings"] = warnings.into();
    }
    axum::Json(out).into_response()
}
