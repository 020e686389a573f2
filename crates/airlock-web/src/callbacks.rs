//! Platform callbacks: `POST /callbacks/{channel}`. The channel authenticates the request
//! (signature, timestamp window, secret token) before anything is parsed as a click; the hub
//! then maps the clicker to a person and checks the button's signed token.

use airlock_channels::CallbackError;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::ControlState;

pub(crate) fn routes() -> Router<ControlState> {
    Router::new().route("/callbacks/{channel}", post(callback).get(handshake))
}

/// `GET /callbacks/{channel}?…`: a platform's subscription handshake (WhatsApp's
/// `hub.verify_token` check), answered only when the channel recognises its verify token.
async fn handshake(State(s): State<ControlState>, Path(name): Path<String>, RawQuery(q): RawQuery) -> Response {
    let Some(ch) = s.hub.as_ref().and_then(|hub| hub.channel(&name).cloned()) else {
        return (StatusCode::NOT_FOUND, "no such channel\n").into_response();
    };
    match ch.subscribe(q.as_deref().unwrap_or_default()) {
        Some(challenge) => (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            challenge,
        )
            .into_response(),
        None => {
            tracing::warn!(channel = %name, "refused a subscription handshake");
            (StatusCode::FORBIDDEN, "verification failed\n").into_response()
        }
    }
}

async fn callback(State(s): State<ControlState>, Path(name): Path<String>, h: HeaderMap, body: Bytes) -> Response {
    let Some(hub) = s.hub.clone() else {
        return (StatusCode::NOT_FOUND, "approvals are not configured\n").into_response();
    };
    let Some(ch) = hub.channel(&name).cloned() else {
        return (StatusCode::NOT_FOUND, "no such channel\n").into_response();
    };
    let now_secs = airlock_gateway::now_ms() / 1000;
    let click = match ch.callback(&h, &body, now_secs) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return match ch.callback_answer(&body, None) {
                Some(answer) => Json(answer).into_response(),
                None => StatusCode::OK.into_response(),
            };
        }
        Err(CallbackError::NotSupported) => {
            return (StatusCode::NOT_FOUND, "this channel takes no callbacks\n").into_response();
        }
        Err(e @ CallbackError::Malformed(_)) => {
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
        Err(e) => {
            tracing::warn!(channel = %name, error = %e, "rejected an unauthenticated callback");
            return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
        }
    };
    // Authenticated; some platforms say only *that* a button was pressed, and who pressed
    // what comes from their API.
    let click = match ch.resolve(click, now_secs).await {
        Ok(Some(c)) => c,
        Ok(None) => return StatusCode::OK.into_response(),
        Err(e @ CallbackError::Unavailable(_)) => {
            tracing::warn!(channel = %name, error = %e, "could not complete a callback's click");
            return (StatusCode::BAD_GATEWAY, "could not fetch the click from the platform\n").into_response();
        }
        Err(e @ CallbackError::Malformed(_)) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(e) => {
            tracing::warn!(channel = %name, error = %e, "rejected a callback's click");
            return (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response();
        }
    };
    let reply = hub.click(&click).await;
    let status = match reply.ok {
        true => StatusCode::OK,
        false => StatusCode::from_u16(ch.refusal_status()).unwrap_or(StatusCode::OK),
    };
    // A platform that prescribes its answer (Discord) gets it; others the channel's body.
    let answer = ch
        .callback_answer(&body, Some(&reply))
        .unwrap_or_else(|| ch.callback_body(&reply));
    // Answer the clicker out of band (ephemeral message, callback answer) without holding
    // up the platform's request, which has a short deadline.
    let r = reply.clone();
    tokio::spawn(async move {
        if let Err(e) = ch.acknowledge(&click, &r).await {
            tracing::warn!(channel = click.channel, error = %e, "could not answer a click");
        }
    });
    (status, Json(answer)).into_response()
}
