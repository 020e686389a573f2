//! `POST /api/v1/policy/reload` (control token): loads the config file again and swaps the
//! policy in, or answers 422 with why nothing changed.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::{ControlState, authorized, unauthorized};

pub(crate) fn routes() -> Router<ControlState> {
    Router::new().route("/api/v1/policy/reload", post(reload))
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
