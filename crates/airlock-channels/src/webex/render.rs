//! A [`Card`] as a Webex message: the Adaptive Card of [`crate::adaptive`] as an attachment,
//! and a markdown fallback (for clients without cards, and notifications) in which every agent
//! string has each ASCII punctuation character backslash-escaped, so it renders as text.

use serde_json::{Value, json};

use crate::adaptive;
use crate::slack::render::status_line;
use crate::text::one_line;
use crate::{Buttons, Card, Reply, Status};

/// Webex's limit for `markdown` / `text`.
pub const MARKDOWN_MAX: usize = 7439;

/// Backslash before every ASCII punctuation character (CommonMark's escape).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn fallback(card: &Card, status: &Status) -> String {
    let title = card
        .summary_title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| format!("Approval needed: {} {}", card.method, card.host));
    let mut s = format!("{} — {} {} (agent {})", title, card.method, card.host, card.agent);
    if let Some(st) = status_line(status, card.approvals_needed()) {
        s.push_str(" — ");
        s.push_str(&st);
    }
    escape(&adaptive::cut(&s, 1000, 1, true))
}

/// The body of `POST /v1/messages` (without the recipient).
pub fn message(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    json!({
        "markdown": fallback(card, status),
        "attachments": [{"contentType": adaptive::CONTENT_TYPE, "content": adaptive::card(card, status, buttons)}],
    })
}

/// The closing reply posted in the card's thread (Webex cannot change a sent card).
pub fn closing(card: &Card, status: &Status) -> String {
    let line = status_line(status, card.approvals_needed()).unwrap_or_default();
    escape(&adaptive::cut(
        &format!("{line} — {}", one_line(&card.id)),
        1000,
        1,
        true,
    ))
}

pub fn reply_text(reply: &Reply) -> String {
    escape(&adaptive::cut(&reply.text, 2000, 20, false))
}
