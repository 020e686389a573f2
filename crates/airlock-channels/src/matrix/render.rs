//! The card as an `m.room.message`: a plain `body` and a sanitized HTML `formatted_body` whose
//! only tags are ours (`p`, `b`, `pre`, `code`, no attributes). Every agent-controlled string is
//! the plain card of [`crate::ntfy::render::message`] (visible escapes, one-line fields, the
//! body quoted and cut with the explicit "N more bytes" notice), HTML-escaped inside one
//! `<pre><code>` block. `m.mentions` is empty, so no `@room` or user id in the text notifies
//! anyone. How to vote (✅ / ❌, or the card's code) is a fixed line of ours.

use serde_json::{Value, json};

use crate::ballot;
use crate::render::{duration, html_escape};
use crate::{Card, Reply, Status};

pub const APPROVE_KEY: &str = "✅";
pub const DENY_KEY: &str = "❌";

fn title(card: &Card) -> String {
    crate::ntfy::render::title(card)
}

/// What a grant vote means on this card, if it offers one.
pub fn grant_label(card: &Card) -> Option<String> {
    card.grant_secs
        .map(|s| format!("approve and allow matching requests for {}", duration(s)))
}

/// The card's content; `code` while it takes votes.
pub fn content(card: &Card, status: &Status, code: Option<&str>) -> Value {
    let text = crate::ntfy::render::message(card, status);
    let how = code.map(|c| {
        format!(
            "React {APPROVE_KEY} to approve or {DENY_KEY} to deny. {}.",
            ballot::instructions(c, grant_label(card).as_deref())
        )
    });
    let mut body = format!("airlock: approval needed — {}\n\n{text}", title(card));
    let mut html = format!(
        "<p><b>airlock: approval needed</b> — {}</p>\n<pre><code>{}</code></pre>",
        html_escape(&title(card)),
        html_escape(&text)
    );
    if let Some(h) = how {
        body.push_str(&format!("\n\n{h}"));
        html.push_str(&format!("\n<p>{}</p>", html_escape(&h)));
    }
    json!({
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        "m.mentions": {},
    })
}

/// An edit (`m.replace`) of `event` to `new`.
pub fn edit(event: &str, new: Value) -> Value {
    let star = |k: &str| format!("* {}", new[k].as_str().unwrap_or_default());
    json!({
        "msgtype": "m.text",
        "body": star("body"),
        "format": "org.matrix.custom.html",
        "formatted_body": star("formatted_body"),
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": event},
        "m.mentions": {},
    })
}

pub fn reaction(event: &str, key: &str) -> Value {
    json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event, "key": key}})
}

/// The answer to a vote, as a notice replying to it.
pub fn answer(event: &str, reply: &Reply) -> Value {
    json!({
        "msgtype": "m.notice",
        "body": crate::render::one_line_cut(&reply.text, 1000),
        "m.relates_to": {"m.in_reply_to": {"event_id": event}},
        "m.mentions": {},
    })
}
