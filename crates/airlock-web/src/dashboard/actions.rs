//! What a signed-in person does: vote, revoke a grant, follow the hub's events.

use std::convert::Infallible;
use std::time::Duration;

use airlock_approvals::VoteError;
use airlock_channels::token::Decision;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use super::auth::{Need, forbidden, post_refusal, require};
use super::pages::{approval_page, grants_page};
use super::{now_ms, redirect};
use crate::ControlState;

#[derive(Deserialize)]
pub(crate) struct VoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

pub(crate) async fn vote(
    State(s): State<ControlState>,
    h: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<VoteForm>, FormRejection>,
) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Action).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // An unreadable form carries no CSRF token: refused like a wrong one.
    let Ok(Form(f)) = form else {
        return forbidden("the form could not be read");
    };
    if let Some(m) = post_refusal(&h, Some(&sess), Some(&f.csrf)) {
        return forbidden(m);
    }
    let decision = match f.decision.as_str() {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        "grant" => Decision::Grant,
        _ => {
            let msg = "unknown decision: use the page's buttons";
            return approval_page(&hub, &sess, &id, StatusCode::BAD_REQUEST, Some((false, msg))).await;
        }
    };
    let (status, ok, msg) = match hub.vote(&id, &sess.person, decision, "dashboard").await {
        Ok(c) if c.state == "pending" => (
            StatusCode::OK,
            true,
            format!(
                "Your vote counted ({} approval{} so far); waiting for more approvals.",
                c.approved_by.len(),
                if c.approved_by.len() == 1 { "" } else { "s" }
            ),
        ),
        Ok(c) => (
            StatusCode::OK,
            true,
            format!("Your vote counted: the request is {}.", c.state),
        ),
        Err(e) => {
            let status = match e {
                VoteError::Unknown(_) => StatusCode::NOT_FOUND,
                VoteError::NotAPerson(_) | VoteError::Refused(_) | VoteError::NoGrant => StatusCode::FORBIDDEN,
                VoteError::Closed(_) => StatusCode::CONFLICT,
                VoteError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, false, format!("Your vote changed nothing: {e}."))
        }
    };
    approval_page(&hub, &sess, &id, status, Some((ok, &msg))).await
}

pub(crate) async fn revoke(
    State(s): State<ControlState>,
    h: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<super::auth::CsrfForm>, FormRejection>,
) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Action).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(Form(f)) = form else {
        return forbidden("the form could not be read");
    };
    if let Some(m) = post_refusal(&h, Some(&sess), Some(&f.csrf)) {
        return forbidden(m);
    }
    match hub.revoke_grant(&id, &sess.person).await {
        // Post/redirect/get: reloading the grants page never repeats the revocation.
        Ok(true) => redirect("/dashboard/grants"),
        Ok(false) => grants_page(
            &hub,
            &sess,
            StatusCode::NOT_FOUND,
            Some((false, "That grant is not active (it expired or was already revoked).")),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: could not revoke a grant");
            grants_page(
                &hub,
                &sess,
                StatusCode::SERVICE_UNAVAILABLE,
                Some((false, "The grant could not be revoked: the store is unavailable.")),
            )
        }
    }
}

/// Server-sent events for the signed-in person: one `approval` event (`{"id","state"}`) per
/// change. A reader that fell behind gets `state: "lagged"` and refetches. The stream ends
/// when the session does, so a page left open does not outlive its sign-in.
pub(crate) async fn events(State(s): State<ControlState>, h: HeaderMap) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Page).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let left = (sess.expires_ms.max(0) as u64).saturating_sub(now_ms());
    let stream = BroadcastStream::new(hub.subscribe())
        .map(|ev| {
            let data = match ev {
                Ok(ev) => serde_json::to_string(&ev).unwrap_or_default(),
                Err(_) => r#"{"id":"","state":"lagged"}"#.to_string(),
            };
            Ok::<_, Infallible>(Event::default().event("approval").data(data))
        })
        .take_until(tokio::time::sleep(Duration::from_millis(left)));
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
