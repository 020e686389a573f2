//! The card as an ntfy notification published as JSON: plain text (never `markdown`, so
//! nothing in it is markup), every agent-controlled string made visible and folded by
//! [`crate::text`], the body quoted line by line and cut with the explicit "N more bytes"
//! notice so the message stays under ntfy's 4,096-byte limit (beyond it ntfy would turn the
//! message into an attachment). The action buttons come only from [`Buttons`]: agent text
//! can only ever be message text.

use serde_json::{Value, json};

use super::verify::press_body;
use crate::render::{duration, one_line_cut, quoted_body, status_line_for, title as card_title, url, utc_hms};
use crate::text::{one_line, truncate, visible};
use crate::{BodyKind, Buttons, Card, Reply, Status};

/// ntfy's message limit in bytes.
pub const MAX_MESSAGE: usize = 4096;
/// What the renderer aims for, leaving room for the lines after the body.
const BUDGET: usize = 3600;
/// The head (everything before the body) may use at most this much.
const HEAD_BUDGET: usize = 1800;
const TITLE_MAX: usize = 200;
const FIELD_MAX: usize = 300;
const BODY_LINES: usize = 40;
/// Tags ntfy shows as emojis: 🚨 and 🔒, so an approval stands out among notifications.
pub const TAGS: [&str; 2] = ["rotating_light", "lock"];

/// The notification title: the card's title, on one line and cut.
pub fn title(card: &Card) -> String {
    one_line_cut(&format!("Approve? {}", card_title(card)), TITLE_MAX)
}

fn field(label: &str, value: &str) -> String {
    format!("{label}: {}", one_line_cut(value, FIELD_MAX))
}

/// The notification text for `status` (buttons are separate, in `actions`).
pub fn message(card: &Card, status: &Status) -> String {
    let mut head = vec![field("Agent", &card.agent)];
    for r in &card.rules {
        head.push(field(
            "Rule",
            &format!(
                "{} — {} (approvers: {}; {} needed)",
                r.name,
                r.reason,
                r.approvers.join(", "),
                r.quorum.max(1)
            ),
        ));
    }
    head.push(field("Request", &format!("{} {}", card.method, url(card))));
    head.extend(card.query.iter().map(|(k, v)| field("Query", &format!("{k} = {v}"))));
    head.extend(card.headers.iter().map(|(k, v)| field("Header", &format!("{k}: {v}"))));
    head.extend(card.summary.iter().map(|(k, v)| field(&one_line_cut(k, 60), v)));
    let mut out = String::new();
    for (i, line) in head.iter().enumerate() {
        if out.len() + line.len() + 1 > HEAD_BUDGET {
            out.push_str(&format!(
                "… {} more lines — full request on the dashboard\n",
                head.len() - i
            ));
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    if card.body.kind != BodyKind::Empty {
        out.push_str(&format!("Request body ({} bytes):\n", card.body.size));
        let tail_room = 400;
        let room = BUDGET.saturating_sub(out.len() + tail_room);
        // Each line gains a "│ " prefix (4 bytes): budget for it before cutting.
        let cut = quoted_body(card, room.saturating_sub(4 * BODY_LINES), BODY_LINES);
        for l in cut.text.split('\n') {
            out.push_str("│ ");
            out.push_str(l);
            out.push('\n');
        }
        if let Some(n) = cut.notice() {
            out.push_str(&n);
            out.push('\n');
        }
    }
    if let Some(g) = card.grant_secs {
        out.push_str(&format!(
            "Grant: approving may also allow matching requests for {}\n",
            duration(g)
        ));
    }
    out.push_str(&format!(
        "Digest {} · expires {} · id {}\n",
        one_line(card.short_digest()),
        utc_hms(card.expires_ms),
        one_line(&card.id)
    ));
    out.push_str(&one_line_cut(&status_line_for(card, status), FIELD_MAX));
    // Whatever the inputs, never over ntfy's limit (the budgets above make this rare).
    let cut = truncate(&out, MAX_MESSAGE - 100, usize::MAX);
    match cut.notice() {
        Some(n) => format!("{}\n{n}", cut.text),
        None => cut.text,
    }
}

fn action(label: &str, callback_url: &str, topic: &str, token: &str) -> Value {
    json!({
        "action": "http",
        "label": label,
        "url": callback_url,
        "method": "POST",
        "headers": { "Content-Type": "application/json" },
        "body": press_body(topic, token),
        // Cleared only when the vote counted: a refused press answers non-2xx and the
        // notification stays, with the app's error.
        "clear": true,
    })
}

/// Up to three `http` actions (ntfy's limit), each POSTing one signed token.
pub fn actions(card: &Card, buttons: &Buttons, callback_url: &str, topic: &str) -> Value {
    let mut out = vec![
        action("Approve", callback_url, topic, &buttons.approve),
        action("Deny", callback_url, topic, &buttons.deny),
    ];
    if let Some(g) = &buttons.grant {
        let label = match card.grant_secs {
            Some(secs) => format!("Approve for {}", duration(secs)),
            None => "Approve and allow similar".into(),
        };
        out.push(action(&label, callback_url, topic, g));
    }
    Value::Array(out)
}

/// The publish-as-JSON body of a new card.
pub fn card(topic: &str, card: &Card, buttons: &Buttons, callback_url: &str, priority: u8) -> Value {
    json!({
        "topic": topic,
        "title": title(card),
        "message": message(card, &Status::Pending { approved_by: vec![] }),
        "tags": TAGS,
        "priority": priority,
        "actions": actions(card, buttons, callback_url, topic),
    })
}

/// ntfy cannot edit a sent notification: a closed card is a new one, without buttons.
pub fn closed(topic: &str, card: &Card, status: &Status) -> Value {
    json!({
        "topic": topic,
        "title": one_line_cut(&format!("{} — {}", status_line_for(card, status), card_title(card)), TITLE_MAX),
        "message": message(card, status),
        "tags": [match status { Status::Approved { .. } => "white_check_mark", _ => "x" }],
        "priority": 3,
    })
}

/// The answer to a counted press.
pub fn reply(topic: &str, reply: &Reply) -> Value {
    json!({
        "topic": topic,
        "title": "airlock",
        "message": one_line_cut(&visible(&reply.text), FIELD_MAX),
        "priority": 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_bodies_carry_only_topic_and_token() {
        let b = Buttons {
            approve: "A".into(),
            deny: "D".into(),
            grant: None,
        };
        let c: Card = serde_json::from_value(json!({
            "id": "i", "agent": "a", "rules": [], "method": "GET", "scheme": "https", "host": "h",
            "port": 443, "path": "/", "query": [], "headers": [],
            "body": {"content_type": null, "kind": "empty", "size": 0, "text": ""},
            "summary_title": null, "summary": [], "digest": "d", "created_ms": 0, "expires_ms": 0,
            "grant_secs": null
        }))
        .unwrap();
        let a = actions(&c, &b, "https://x/callbacks/ntfy", "t");
        assert_eq!(a.as_array().unwrap().len(), 2);
        assert_eq!(a[0]["body"], r#"{"token":"A","topic":"t"}"#);
        assert_eq!(a[1]["label"], "Deny");
    }
}
