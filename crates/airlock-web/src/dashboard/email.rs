//! The landing page of emailed cards (`/email/vote`): a GET shows the approval and one
//! confirming form, and never votes (mail scanners and link previews follow links); the
//! form's POST votes once, as the person the link was minted for, with a double-submit CSRF
//! cookie the GET set. Closed approvals show their outcome.

use airlock_approvals::{Hub, LinkView};
use airlock_channels::email::verify::{self, CSRF_COOKIE, PATH};
use airlock_channels::render;
use airlock_channels::token::Decision;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::auth::{Need, forbidden, post_refusal, random_token};
use super::html::{self, esc};
use super::{html_page, not_configured};
use crate::ControlState;

const CHANNEL: &str = "email";
const INVALID: &str = "This link is not valid for any approval. Open it again from the email airlock sent you.";

fn hub(s: &ControlState, need: Need) -> Result<Hub, Box<Response>> {
    let Some(hub) = s.hub.clone() else {
        return Err(Box::new(not_configured(need)));
    };
    if hub.channel(CHANNEL).is_none() {
        let msg = html::message(false, "Approvals by email are not configured on this gateway.");
        return Err(Box::new(html_page(
            StatusCode::NOT_FOUND,
            "Not configured",
            None,
            &msg,
            None,
        )));
    }
    Ok(hub)
}

fn verb(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approve",
        Decision::Deny => "deny",
        Decision::Grant => "approve with a grant",
    }
}

/// The card, where it stands, and `action` (a form, or why there is none).
fn page(status: StatusCode, v: &LinkView, msg: Option<(bool, &str)>, action: &str) -> Response {
    let a = &v.approval;
    let main = format!(
        "{msg}<p class=\"note\">Signed in by this link as <strong id=\"person\">{person}</strong>.</p>\n\
         <article id=\"approval\" data-id=\"{id}\" data-open=\"{open}\">\n{card}</article>\n\
         <p id=\"state\"><strong>{line}</strong></p>\n{action}",
        msg = msg.map_or(String::new(), |(ok, m)| html::message(ok, m)),
        person = esc(&v.person),
        id = esc(&a.card.id),
        open = a.status.is_open(),
        card = render::html_card(&a.card, &a.status, true),
        line = esc(&render::status_line_for(&a.card, &a.status)),
    );
    html_page(status, &render::title(&a.card), None, &main, None)
}

/// GET: shows, never votes. Sets the CSRF cookie its form posts back.
pub(crate) async fn show(State(s): State<ControlState>, RawQuery(q): RawQuery) -> Response {
    let hub = match hub(&s, Need::Page) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let Ok(link) = verify::link(q.as_deref().unwrap_or("")) else {
        return forbidden(INVALID);
    };
    let v = match hub.link_view(CHANNEL, &link.address, &link.token).await {
        Ok(Some(v)) => v,
        Ok(None) => return forbidden(INVALID),
        Err(_) => return unavailable(),
    };
    let csrf = random_token();
    let action = if !v.approval.status.is_open() {
        String::new()
    } else if let Some(approve) = v.voted {
        format!(
            "<p class=\"note\" id=\"voted\">You already voted to {} this request.</p>",
            if approve { "approve" } else { "deny" }
        )
    } else {
        let class = if v.decision == Decision::Deny {
            "deny"
        } else {
            "approve"
        };
        format!(
            "<form class=\"actions\" method=\"post\" action=\"{PATH}\">\
             <input type=\"hidden\" name=\"a\" value=\"{a}\"><input type=\"hidden\" name=\"t\" value=\"{t}\">{csrf}\
             <button type=\"submit\" class=\"{class}\" id=\"confirm\">Confirm: {verb}</button></form>\
             <p class=\"note\">Nothing has been decided yet: only this button votes.</p>",
            a = esc(&link.address),
            t = esc(&link.token),
            csrf = html::csrf_input(&csrf),
            verb = verb(v.decision),
        )
    };
    let mut res = page(StatusCode::OK, &v, None, &action);
    let cookie = format!("{CSRF_COOKIE}={csrf}; Path={PATH}; HttpOnly; SameSite=Strict; Max-Age=3600");
    if let Ok(c) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    res
}

/// POST: the confirmation. Votes once, through the hub like any platform click.
pub(crate) async fn confirm(State(s): State<ControlState>, h: HeaderMap, body: Bytes) -> Response {
    let hub = match hub(&s, Need::Action) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    if let Some(m) = post_refusal(&h, None, None) {
        return forbidden(m);
    }
    let cookie = verify::csrf_cookie(h.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()));
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let form = std::str::from_utf8(&body).unwrap_or("");
    let click = match verify::confirm(form, cookie, site) {
        Ok(c) => c,
        Err(e) => {
            return forbidden(&format!(
                "This confirmation was refused ({e}). Open the link from your email again and press the button on that page."
            ));
        }
    };
    let (user, token) = (click.user.clone(), click.token.clone());
    let reply = hub.click(&click).await;
    let status = if reply.ok {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    match hub.link_view(CHANNEL, &user, &token).await {
        Ok(Some(v)) => page(status, &v, Some((reply.ok, &reply.text)), ""),
        // A link the hub refused shows nothing of any approval.
        Ok(None) => html_page(status, "Refused", None, &html::message(reply.ok, &reply.text), None),
        Err(_) => unavailable(),
    }
}

fn unavailable() -> Response {
    let msg = html::message(false, "airlock's store is unavailable; try the link again shortly.");
    html_page(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", None, &msg, None)
}
