//! A [`Card`] as a Google Chat message: `cardsV2` built from the same rendering as the Adaptive
//! Card ([`crate::adaptive`]: the same fields, made visible and cut the same way), each value
//! HTML-escaped (Chat's card text takes a subset of HTML: `<b>`, `<a href>`, `<users/…>`
//! mentions) so agent text shows as text. Only our labels are bold. The buttons are a
//! `buttonList` whose actions call function `airlock` with one parameter, the signed token.
//! The message's own `text` (notifications) is fixed text of ours.

use serde_json::{Value, json};

use super::verify::{FUNCTION, PARAM};
use crate::{Buttons, Card, Reply, Status, adaptive};

pub const CARD_ID: &str = "airlock";
/// The notification text: never agent text.
pub const FALLBACK: &str = "airlock: an agent's request needs approval";

/// `& < > " '` as entities; newlines as `<br>`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

fn paragraph(label: Option<&str>, text: &str) -> Value {
    let t = match label {
        Some(l) => format!("<b>{l}</b><br>{}", escape(text)),
        None => escape(text),
    };
    json!({"textParagraph": {"text": t}})
}

/// The `cardsV2` entry.
pub fn card(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    let ac = adaptive::card(card, status, None);
    let mut widgets = Vec::new();
    let mut label: Option<String> = None;
    for el in ac["body"].as_array().into_iter().flatten() {
        if el["type"] == "TextBlock" {
            label = el["text"].as_str().map(str::to_string);
            continue;
        }
        let text: String = el["inlines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["text"].as_str())
            .collect();
        widgets.push(paragraph(label.take().as_deref(), &text));
    }
    if let (true, Some(b)) = (status.is_open(), buttons) {
        let button = |text: &str, token: &str| {
            json!({"text": text, "onClick": {"action": {"function": FUNCTION,
                   "parameters": [{"key": PARAM, "value": token}]}}})
        };
        let mut list = vec![button("Approve", &b.approve), button("Deny", &b.deny)];
        if let Some(g) = &b.grant {
            let t = match card.grant_secs {
                Some(secs) => format!("Approve for {}", crate::slack::render::duration(secs)),
                None => "Approve and allow similar".to_string(),
            };
            list.push(button(&t, g));
        }
        widgets.push(json!({"buttonList": {"buttons": list}}));
    }
    json!({"cardId": CARD_ID, "card": {
        "header": {"title": "Approval needed", "subtitle": "airlock"},
        "sections": [{"widgets": widgets}],
    }})
}

/// A new message carrying the card.
pub fn message(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    json!({"text": FALLBACK, "cardsV2": [self::card(card, status, buttons)]})
}

/// The synchronous answer to a press: a new message in the DM with the outcome.
pub fn answer(reply: &Reply) -> Value {
    json!({"actionResponse": {"type": "NEW_MESSAGE"}, "text": escape(&adaptive::cut(&reply.text, 500, 1, true))})
}
