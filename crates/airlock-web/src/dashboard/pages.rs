//! The pages: pending (with its live fragment), one approval in full, history and grants.

use airlock_approvals::{ApprovalView, Hub};
use airlock_channels::Card;
use airlock_channels::render;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{Need, Session, require};
use super::html::{self, Who, esc};
use super::{html_page, now_ms};
use crate::ControlState;

const LIST_LIMIT: i64 = 200;

/// True when the person holds a role any of the card's rules accepts.
pub(crate) fn eligible(hub: &Hub, person: &str, card: &Card) -> bool {
    hub.people().get(person).is_some_and(|p| {
        card.rules
            .iter()
            .flat_map(|r| &r.approvers)
            .any(|role| p.roles.contains(role))
    })
}

fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "dashboard: the store could not be read");
    html_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        None,
        &html::message(false, "the approvals store is unavailable; try again shortly"),
        None,
    )
}

fn who(sess: &Session) -> Who<'_> {
    Who {
        person: &sess.person,
        csrf: &sess.csrf,
    }
}

/// Oldest first, the order a person works through them; past [`LIST_LIMIT`] a line says how
/// many more are waiting, so a flood of newer requests cannot hide an older one.
async fn pending_html(hub: &Hub, sess: &Session) -> Result<String, Response> {
    let pending = hub.pending(LIST_LIMIT).await.map_err(store_error)?;
    let mut out = html::approval_list(
        &pending.approvals,
        now_ms(),
        |v| eligible(hub, &sess.person, &v.card),
        "Nothing is waiting for approval.",
    );
    if pending.not_shown > 0 {
        out.push_str(&format!(
            "<p class=\"note\" id=\"not-shown\">{} more pending request{} not shown here (oldest first: \
             decide these to see the rest, or run <code>airlock approvals list</code>).</p>",
            pending.not_shown,
            if pending.not_shown == 1 { " is" } else { "s are" }
        ));
    }
    Ok(out)
}

/// Decided approvals, newest first.
async fn decided(hub: &Hub, limit: usize) -> Result<Vec<ApprovalView>, Response> {
    let all = hub.list(None, LIST_LIMIT).await.map_err(store_error)?;
    Ok(all.into_iter().filter(|v| !v.status.is_open()).take(limit).collect())
}

pub(crate) async fn dashboard(State(s): State<ControlState>, h: HeaderMap) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Page).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let pending = match pending_html(&hub, &sess).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let recent = match decided(&hub, 10).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = now_ms();
    let main = format!(
        "<h1>Pending approvals</h1>\n<section id=\"pending\">{pending}</section>\n\
         <h2>Recent decisions</h2>\n<section id=\"recent\">{}</section>\n<p><a href=\"/dashboard/history\">All history</a></p>\n\
         <h2>Active grants</h2>\n<section id=\"grants\">{}</section>",
        html::approval_list(&recent, now, |_| false, "No decisions yet."),
        html::grants_table(&hub.grants(), &sess.csrf, now),
    );
    html_page(
        StatusCode::OK,
        "Pending approvals",
        Some(&who(&sess)),
        &main,
        Some(html::DASHBOARD_SCRIPT),
    )
}

/// The pending list alone, for the dashboard's live refresh.
pub(crate) async fn pending_fragment(State(s): State<ControlState>, h: HeaderMap) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Page).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match pending_html(&hub, &sess).await {
        Ok(p) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], p).into_response(),
        Err(r) => r,
    }
}

pub(crate) async fn history(State(s): State<ControlState>, h: HeaderMap) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Page).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let recent = match decided(&hub, LIST_LIMIT as usize).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let main = format!(
        "<h1>History</h1>\n<section id=\"history\">{}</section>",
        html::approval_list(&recent, now_ms(), |_| false, "No decisions yet.")
    );
    html_page(StatusCode::OK, "History", Some(&who(&sess)), &main, None)
}

pub(crate) async fn grants(State(s): State<ControlState>, h: HeaderMap) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Page).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    grants_page(&hub, &sess, StatusCode::OK, None)
}

pub(crate) fn grants_page(hub: &Hub, sess: &Session, status: StatusCode, msg: Option<(bool, &str)>) -> Response {
    let main = format!(
        "<h1>Active grants</h1>\n{}<p>A grant lets an agent repeat a matching request (same agent, rule and host) \
         without a new approval until it expires or is revoked.</p>\n<section id=\"grants\">{}</section>",
        msg.map_or(String::new(), |(ok, m)| html::message(ok, m)),
        html::grants_table(&hub.grants(), &sess.csrf, now_ms())
    );
    html_page(status, "Grants", Some(&who(sess)), &main, None)
}

pub(crate) async fn approval(State(s): State<ControlState>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (hub, sess) = match require(&s, &h, Need::Page).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    approval_page(&hub, &sess, &id, StatusCode::OK, None).await
}

/// One approval in full: the complete card (whole body), its votes, and — while it is
/// pending and the person may decide it — the vote forms. `msg` is a vote's outcome.
pub(crate) async fn approval_page(
    hub: &Hub,
    sess: &Session,
    id: &str,
    status: StatusCode,
    msg: Option<(bool, &str)>,
) -> Response {
    let v = match hub.get(id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            let id = render::one_line_cut(id, 200);
            let main = html::message(false, &format!("There is no approval \"{id}\"."));
            return html_page(StatusCode::NOT_FOUND, "Not found", Some(&who(sess)), &main, None);
        }
        Err(e) => return store_error(e),
    };
    let voted = v.votes.iter().find(|vote| vote.person == sess.person);
    let actions = if !v.status.is_open() {
        String::new()
    } else if let Some(vote) = voted {
        format!(
            "<p class=\"note\" id=\"voted\">You voted to {} this request.</p>",
            if vote.approve { "approve" } else { "deny" }
        )
    } else if eligible(hub, &sess.person, &v.card) {
        html::vote_forms(&v.card.id, &sess.csrf, v.card.grant_secs)
    } else {
        "<p class=\"note\" id=\"not-eligible\">You do not hold a role that may decide this request.</p>".into()
    };
    let main = format!(
        "<p><a href=\"/dashboard\">← Pending approvals</a></p>\n{msg}\
         <article id=\"approval\" data-id=\"{id}\" data-open=\"{open}\">\n{card}</article>\n{actions}\n<h2>Votes</h2>\n{votes}",
        msg = msg.map_or(String::new(), |(ok, m)| html::message(ok, m)),
        id = esc(&v.card.id),
        open = v.status.is_open(),
        card = render::html_card(&v.card, &v.status, true),
        votes = html::votes_table(&v),
    );
    html_page(
        status,
        &render::title(&v.card),
        Some(&who(sess)),
        &main,
        Some(html::DETAIL_SCRIPT),
    )
}
