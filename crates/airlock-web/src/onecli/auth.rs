//! Who is calling: the control token (the operator, everything), or a scoped API key (only
//! what its scopes name). A key is looked up by its hash on every call, so `airlock apikey rm`
//! refuses it at once, on every replica. No key → 401, always.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::error;
use crate::ControlState;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Create and list agents, read their container configuration.
    Provision,
    /// Read held requests and decide them as the configured approver.
    Approvals,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Provision, Scope::Approvals];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Provision => "provision",
            Scope::Approvals => "approvals",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// An authenticated caller.
pub(crate) enum Caller {
    Operator,
    Key(String),
}

impl Caller {
    pub(crate) fn describe(&self) -> String {
        match self {
            Caller::Operator => "the control token".into(),
            Caller::Key(name) => format!("API key {name:?}"),
        }
    }
}

pub(crate) async fn authorize(s: &ControlState, h: &HeaderMap, scope: Scope) -> Result<Caller, Response> {
    let unauthorized = || error(StatusCode::UNAUTHORIZED, json!({ "error": "unauthorized" }));
    let Some(token) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(unauthorized());
    };
    // Hashes are compared, never the keys: no timing depends on the key's bytes.
    let hash = airlock_gateway::token_hash(token);
    if !s.token_hash.is_empty() && hash.as_slice() == s.token_hash.as_slice() {
        return Ok(Caller::Operator);
    }
    match s.store.api_key_by_hash(&hash).await {
        Ok(Some(k)) if k.scopes.iter().any(|x| x == scope.as_str()) => Ok(Caller::Key(k.name)),
        Ok(Some(k)) => Err(error(
            StatusCode::FORBIDDEN,
            json!({ "error": format!("API key {:?} lacks the {} scope", k.name, scope.as_str()) }),
        )),
        Ok(None) => Err(unauthorized()),
        Err(e) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": e.to_string() }),
        )),
    }
}
