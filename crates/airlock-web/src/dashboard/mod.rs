//! The approver dashboard: server-rendered HTML on the control listener. Each person signs in
//! with their own password and votes as themselves (channel "dashboard"); pages follow the
//! hub live over server-sent events. No external scripts or styles: the only script is inline
//! under a per-response CSP nonce, and agent-controlled text is always escaped element content.

mod actions;
mod auth;
mod email;
mod html;
mod pages;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use auth::hash_password;

use crate::ControlState;

pub fn routes() -> Router<ControlState> {
    Router::new()
        .route("/", get(|| async { redirect("/dashboard") }))
        .route("/dashboard", get(pages::dashboard))
        .route("/dashboard/login", get(auth::login_form).post(auth::login))
        .route("/dashboard/logout", post(auth::logout))
        .route("/dashboard/events", get(actions::events))
        .route("/dashboard/fragment/pending", get(pages::pending_fragment))
        .route("/dashboard/approvals/{id}", get(pages::approval))
        .route("/dashboard/approvals/{id}/vote", post(actions::vote))
        .route("/dashboard/history", get(pages::history))
        .route("/dashboard/grants", get(pages::grants))
        .route("/dashboard/grants/{id}/revoke", post(actions::revoke))
        .route(
            airlock_channels::email::verify::PATH,
            get(email::show).post(email::confirm),
        )
        .layer(middleware::map_response(security_headers))
}

/// Applied to every dashboard response. Pages carry their own nonce-based CSP; anything
/// else (redirects, fragments, the event stream) gets one that allows nothing.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

pub(crate) use airlock_gateway::now_ms;

/// 303: after a POST the browser follows with a GET.
pub(crate) fn redirect(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A complete HTML page with its CSP. A fresh nonce per response is the only way a script or
/// style runs; injected markup, even if it slipped past the escaping, could not execute.
pub(crate) fn html_page(
    status: StatusCode,
    title: &str,
    who: Option<&html::Who>,
    main: &str,
    script: Option<&str>,
) -> Response {
    let nonce = auth::random_token();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let body = html::page(&nonce, title, who, main, script);
    let mut res = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// Without `[people]` there is no hub: nobody can sign in, and the pages say why.
pub(crate) fn not_configured(need: auth::Need) -> Response {
    let status = match need {
        auth::Need::Page => StatusCode::OK,
        auth::Need::Action => StatusCode::FORBIDDEN,
    };
    html_page(
        status,
        "Approvals not configured",
        None,
        &html::message(
            false,
            "Approvals are not configured on this gateway (add [people] and approve rules to the config).",
        ),
        None,
    )
}
