//! `GET /oauth/callback`: where an OAuth2 provider sends the operator's browser back after
//! consent. The `state` must name a flow `airlock connect` started and that has not expired or
//! been answered; the code is stored for that process, which alone holds the PKCE verifier that
//! redeems it. Nothing from the query is echoed back.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::ControlState;

pub(crate) fn routes() -> Router<ControlState> {
    Router::new().route("/oauth/callback", get(callback))
}

#[derive(Deserialize)]
struct Params {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

fn page(status: StatusCode, text: &str) -> Response {
    let body = format!("<!doctype html><meta charset=utf-8><title>airlock</title><p>{text}</p>");
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn callback(State(s): State<ControlState>, Query(p): Query<Params>) -> Response {
    fn short(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|x| !x.is_empty() && x.len() <= 4096)
    }
    let (Some(state), code) = (short(&p.state), short(&p.code)) else {
        return page(StatusCode::BAD_REQUEST, "This is not an answer to an airlock connect.");
    };
    // The provider's error code only, kept to the characters an OAuth2 error code has.
    let error = p.error.as_deref().map(|e| {
        e.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect::<String>()
    });
    if code.is_none() && error.is_none() {
        return page(
            StatusCode::BAD_REQUEST,
            "The provider sent neither a code nor an error.",
        );
    }
    let now = airlock_gateway::now_ms() as i64;
    match s.store.oauth_callback(state, code, error.as_deref(), now).await {
        Ok(true) if error.is_none() => page(
            StatusCode::OK,
            "Consent received. airlock connect finishes in your terminal; you can close this window.",
        ),
        Ok(true) => page(StatusCode::OK, "The provider refused consent; see your terminal."),
        Ok(false) => page(
            StatusCode::BAD_REQUEST,
            "Unknown or expired state: run airlock connect again.",
        ),
        Err(_) => page(StatusCode::SERVICE_UNAVAILABLE, "The store is unavailable; try again."),
    }
}
