//! A [`Card`] as an Adaptive Card (schema 1.3), for the platforms that speak it (Webex,
//! Microsoft Teams). Invariant 8: every string the agent controls is a `TextRun` inside a
//! `RichTextBlock`, which hosts render as plain text (no markdown, no links, no `<at>`
//! mentions, no HTML), after [`visible`] / [`one_line`] and cut with the explicit "N more bytes"
//! notice. Only fixed labels of ours are `TextBlock`s. The actions are exactly our buttons,
//! each `Action.Submit` carrying `{"airlock": <signed token>}` and nothing else.

use serde_json::{Value, json};

use crate::slack::render::{duration, status_line, utc_datetime};
use crate::text::{one_line, truncate, visible};
use crate::{Buttons, Card, Status};

pub const CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
/// The field of `Action.Submit` data that carries the token.
pub const TOKEN_FIELD: &str = "airlock";
pub const ACTION_APPROVE: &str = "approve";
pub const ACTION_DENY: &str = "deny";
pub const ACTION_GRANT: &str = "grant";

const VALUE_MAX: usize = 500;
const ENTRY_MAX: usize = 200;
const LIST_MAX_ENTRIES: usize = 10;
const SUMMARY_MAX: usize = 8;
pub const BODY_MAX_BYTES: usize = 3000;
pub const BODY_MAX_LINES: usize = 40;

/// `raw` made visible and cut to `max_bytes` / `max_lines`, with the notice when cut.
pub fn cut(raw: &str, max_bytes: usize, max_lines: usize, line: bool) -> String {
    let shown = if line { one_line(raw) } else { visible(raw) };
    let c = truncate(&shown, max_bytes, max_lines);
    match c.notice() {
        Some(n) if c.text.is_empty() => n,
        Some(n) => format!("{}\n{n}", c.text),
        None => c.text,
    }
}

/// An agent string as a plain-text run.
fn run(text: String, monospace: bool) -> Value {
    let mut r = json!({"type": "TextRun", "text": text});
    if monospace {
        r["fontType"] = json!("Monospace");
    }
    r
}

fn rich(runs: Vec<Value>) -> Value {
    json!({"type": "RichTextBlock", "inlines": runs})
}

/// A fixed label of ours (no agent text).
fn label(text: &str) -> Value {
    json!({"type": "TextBlock", "text": text, "weight": "Bolder", "wrap": true, "spacing": "Medium"})
}

fn title(card: &Card) -> String {
    match &card.summary_title {
        Some(t) if !t.trim().is_empty() => t.clone(),
        _ => format!("Approval needed: {} {}", card.method, card.host),
    }
}

fn url(card: &Card) -> String {
    let default_port = matches!((card.scheme.as_str(), card.port), ("https", 443) | ("http", 80));
    if default_port {
        format!("{}://{}{}", card.scheme, card.host, card.path)
    } else {
        format!("{}://{}:{}{}", card.scheme, card.host, card.port, card.path)
    }
}

fn list(pairs: &[(String, String)], sep: &str, noun: &str) -> String {
    let mut lines: Vec<String> = pairs
        .iter()
        .take(LIST_MAX_ENTRIES)
        .map(|(k, v)| cut(&format!("{k}{sep}{v}"), ENTRY_MAX, 1, true))
        .collect();
    if pairs.len() > LIST_MAX_ENTRIES {
        lines.push(format!(
            "… {} more {noun} — full request on the dashboard",
            pairs.len() - LIST_MAX_ENTRIES
        ));
    }
    lines.join("\n")
}

/// The card as an Adaptive Card; the actions only while the status is open and buttons given.
pub fn card(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    let rules: Vec<String> = card
        .rules
        .iter()
        .map(|r| {
            format!(
                "{} — {} (approvers: {}; {} needed)",
                r.name,
                r.reason,
                r.approvers.join(", "),
                r.quorum.max(1)
            )
        })
        .collect();
    let mut body = vec![
        json!({"type": "RichTextBlock", "inlines": [
            {"type": "TextRun", "text": cut(&title(card), 200, 1, true), "size": "Large", "weight": "Bolder"}
        ]}),
        label("Agent"),
        rich(vec![run(cut(&card.agent, VALUE_MAX, 1, true), false)]),
        label(if card.rules.len() == 1 { "Rule" } else { "Rules" }),
        rich(vec![run(cut(&rules.join(" · "), VALUE_MAX, 1, true), false)]),
        label("Request"),
        rich(vec![run(
            cut(&format!("{} {}", card.method, url(card)), VALUE_MAX, 1, true),
            true,
        )]),
    ];
    if !card.query.is_empty() {
        body.push(label("Query"));
        body.push(rich(vec![run(list(&card.query, " = ", "parameters"), true)]));
    }
    if !card.headers.is_empty() {
        body.push(label("Headers"));
        body.push(rich(vec![run(list(&card.headers, ": ", "headers"), true)]));
    }
    if !card.summary.is_empty() {
        body.push(label("Summary"));
        let mut lines: Vec<(String, String)> = card.summary.iter().take(SUMMARY_MAX).cloned().collect();
        if card.summary.len() > SUMMARY_MAX {
            lines.push((
                "…".into(),
                format!(
                    "{} more lines — full request on the dashboard",
                    card.summary.len() - SUMMARY_MAX
                ),
            ));
        }
        body.push(rich(vec![run(list(&lines, ": ", "lines"), false)]));
    }
    let b = &card.body;
    let kind = serde_json::to_value(b.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let about = match &b.content_type {
        Some(ct) => format!("{ct} · {kind} · {} bytes", b.size),
        None => format!("{kind} · {} bytes", b.size),
    };
    body.push(label("Body"));
    body.push(rich(vec![run(cut(&about, VALUE_MAX, 1, true), false)]));
    if !b.text.is_empty() {
        body.push(rich(vec![run(
            cut(&b.text, BODY_MAX_BYTES, BODY_MAX_LINES, false),
            true,
        )]));
    }
    let needed = card.approvals_needed();
    if let Some(s) = status_line(status, needed) {
        body.push(label("Status"));
        body.push(rich(vec![run(cut(&s, VALUE_MAX, 1, true), false)]));
    }
    body.push(rich(vec![run(
        format!(
            "Needs {needed} approval{} · digest {} · expires {} · id {}",
            if needed == 1 { "" } else { "s" },
            one_line(card.short_digest()),
            utc_datetime(card.expires_ms),
            one_line(&card.id),
        ),
        false,
    )]));
    let mut out = json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.3",
        "body": body,
    });
    if let (true, Some(b)) = (status.is_open(), buttons) {
        let submit = |title: &str, id: &str, token: &str, style: &str| {
            json!({"type": "Action.Submit", "id": id, "title": title, "style": style,
                   "data": {TOKEN_FIELD: token}})
        };
        let mut actions = vec![
            submit("Approve", ACTION_APPROVE, &b.approve, "positive"),
            submit("Deny", ACTION_DENY, &b.deny, "destructive"),
        ];
        if let Some(g) = &b.grant {
            let t = match card.grant_secs {
                Some(secs) => format!("Approve for {}", duration(secs)),
                None => "Approve and allow similar".to_string(),
            };
            actions.push(submit(&t, ACTION_GRANT, g, "default"));
        }
        out["actions"] = Value::Array(actions);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_counts_and_shows_hidden_characters() {
        assert_eq!(cut("a\u{202e}b\nc", 100, 5, true), "a<U+202E>b c");
        let long = cut(&"x\n".repeat(10_000), 3000, 40, false);
        assert_eq!(long.lines().count(), 41);
        assert!(long.ends_with("more bytes — full request on the dashboard"));
    }
}
