//! A [`Card`] as a Discord message: one embed and, while the approval is open, one action
//! row with exactly our buttons (invariant 8).
//!
//! Discord renders markdown, mentions (`<@id>`, `@everyone`), channel links, custom emoji,
//! masked links and headings in embed text. Agent strings are therefore shown only inside
//! code: values in inline code spans (where nothing renders), the body in a code block; a
//! backtick of the agent's becomes U+02CB so it cannot close the code it sits in. Where code
//! cannot be used (the embed title, field names, the footer) every ASCII punctuation character
//! is backslash-escaped, Discord's own escape. All of it after [`visible`] / [`one_line`],
//! and cut with the explicit "N more bytes" notice so that every embed limit holds.
//! `allowed_mentions: {parse: []}` is sent as well: even a mention that slipped through
//! would notify nobody.

use serde_json::{Value, json};

use crate::slack::render::{duration, status_line, utc_datetime};
use crate::text::{one_line, truncate, visible};
use crate::{Buttons, Card, Reply, Status};

pub const TITLE_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4096;
pub const FIELDS_MAX: usize = 25;
pub const FIELD_NAME_MAX: usize = 256;
pub const FIELD_VALUE_MAX: usize = 1024;
pub const FOOTER_MAX: usize = 2048;
/// Sum of every text of all embeds in a message.
pub const EMBED_TOTAL_MAX: usize = 6000;
pub const CONTENT_MAX: usize = 2000;
pub const BUTTON_LABEL_MAX: usize = 80;
pub const CUSTOM_ID_MAX: usize = 100;

/// Button styles.
pub const PRIMARY: u64 = 1;
pub const SUCCESS: u64 = 3;
pub const DANGER: u64 = 4;

/// What a backtick of the agent's is shown as (U+02CB MODIFIER LETTER GRAVE ACCENT).
pub const BACKTICK_STANDIN: char = '\u{2cb}';

/// Budgets that keep the embed under [`EMBED_TOTAL_MAX`] whatever the agent sends.
const BODY_BUDGET: usize = 1500;
const BODY_MAX_LINES: usize = 30;
const VALUE_BUDGET: usize = 400;
const LIST_BUDGET: usize = 600;
const SUMMARY_FIELDS: usize = 5;
const SUMMARY_NAME_BUDGET: usize = 40;
const SUMMARY_VALUE_BUDGET: usize = 180;
const ENTRY_BUDGET: usize = 150;

const AMBER: u64 = 0xF0B232;
const GREEN: u64 = 0x23A55A;
const RED: u64 = 0xDA373C;
const GREY: u64 = 0x80848E;

/// Length as Discord may count it: UTF-16 units are never fewer than characters.
pub fn discord_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Backslash before every ASCII punctuation character: markdown, mentions, links and emoji
/// all start with one, and Discord renders `\x` as a literal `x`.
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

fn no_backticks(s: &str) -> String {
    s.replace('`', &BACKTICK_STANDIN.to_string())
}

/// One agent string on one line inside an inline code span.
fn code_span(s: &str) -> String {
    let inner = no_backticks(&one_line(s));
    if inner.trim().is_empty() {
        // An empty or blank span would show its backticks; say what it is instead.
        return escape("(empty)");
    }
    format!("`{inner}`")
}

/// Renders `raw` with `show`, cutting it until the result plus the "N more bytes" notice fits
/// `budget` (Discord characters).
fn fit(raw: &str, budget: usize, max_lines: usize, sep: &str, show: impl Fn(&str) -> String) -> String {
    let mut max_bytes = raw.len();
    loop {
        let cut = truncate(raw, max_bytes, max_lines);
        let mut out = if cut.text.is_empty() && cut.omitted_bytes > 0 {
            String::new()
        } else {
            show(&cut.text)
        };
        if let Some(notice) = cut.notice() {
            if !out.is_empty() {
                out.push_str(sep);
            }
            out.push_str(&escape(&notice));
        }
        let len = discord_len(&out);
        if len <= budget {
            return out;
        }
        if cut.text.is_empty() {
            return out.chars().take(budget).collect();
        }
        max_bytes = (cut.text.len() * budget / len).min(cut.text.len() - 1);
    }
}

/// An agent string as an inline code span, cut to `budget`.
fn value(raw: &str, budget: usize) -> String {
    fit(raw, budget, 1, " ", code_span)
}

/// An agent string as escaped markdown text on one line, cut to `budget`.
fn escaped_line(raw: &str, budget: usize) -> String {
    fit(raw, budget, 1, " ", |t| escape(&one_line(t)))
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

fn field(name: &str, value: String) -> Value {
    json!({"name": name, "value": value, "inline": false})
}

/// Code-span lines under a budget, then how many were left out.
fn list(pairs: &[(String, String)], sep: &str, noun: &str) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        let line = value(&format!("{k}{sep}{v}"), ENTRY_BUDGET);
        if discord_len(&out) + 1 + discord_len(&line) + 80 > LIST_BUDGET {
            out.push_str(&format!(
                "\n… {} more {noun} — full request on the dashboard",
                pairs.len() - i
            ));
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line);
    }
    out
}

fn body_description(card: &Card) -> String {
    let b = &card.body;
    if b.text.is_empty() {
        return "*No body*".to_string();
    }
    let fenced = |t: &str| {
        let inner = visible(t).replace("```", crate::slack::render::FENCE_STANDIN);
        // A backtick at the very end would merge with the closing fence.
        let inner = if inner.ends_with('`') {
            no_backticks(&inner)
        } else {
            inner
        };
        format!("```\n{inner}\n```")
    };
    fit(&b.text, BODY_BUDGET, BODY_MAX_LINES, "\n", fenced)
}

fn body_about(card: &Card) -> String {
    let b = &card.body;
    let kind = serde_json::to_value(b.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut about = match &b.content_type {
        Some(ct) => format!("{ct} · {kind} · {} bytes", b.size),
        None => format!("{kind} · {} bytes", b.size),
    };
    if let Some(d) = &b.decoded {
        about.push_str(&format!(" · decoded from {} ({} bytes)", d.encoding, d.size));
    }
    let mut out = value(&about, VALUE_BUDGET);
    if b.text.contains("```") {
        out.push_str(&escape(&format!(
            " · ``` shown as {}",
            crate::slack::render::FENCE_STANDIN
        )));
    }
    out
}

fn color(status: &Status) -> u64 {
    match status {
        Status::Pending { .. } => AMBER,
        Status::Approved { .. } => GREEN,
        Status::Denied { .. } | Status::Failed { .. } => RED,
        _ => GREY,
    }
}

/// The card as one embed.
pub fn embed(card: &Card, status: &Status) -> Value {
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
    let mut fields = vec![
        field("Agent", value(&card.agent, VALUE_BUDGET)),
        field(
            if card.rules.len() == 1 { "Rule" } else { "Rules" },
            value(&rules.join(" · "), VALUE_BUDGET),
        ),
        field(
            "Request",
            value(&format!("{} {}", card.method, url(card)), VALUE_BUDGET),
        ),
    ];
    if !card.query.is_empty() {
        fields.push(field("Query", list(&card.query, " = ", "parameters")));
    }
    if !card.headers.is_empty() {
        fields.push(field("Headers", list(&card.headers, ": ", "headers")));
    }
    let n = card.summary.len();
    let shown = if n > SUMMARY_FIELDS { SUMMARY_FIELDS - 1 } else { n };
    for (label, v) in &card.summary[..shown] {
        let name = escaped_line(label, SUMMARY_NAME_BUDGET);
        let name = if name.is_empty() { "\u{2014}".to_string() } else { name };
        fields.push(field(&name, value(v, SUMMARY_VALUE_BUDGET)));
    }
    if n > shown {
        fields.push(field(
            "More",
            format!("… {} more lines — full request on the dashboard", n - shown),
        ));
    }
    fields.push(field("Body", body_about(card)));
    let needed = card.approvals_needed();
    if let Some(s) = status_line(status, needed) {
        fields.push(field("Status", escaped_line(&s, VALUE_BUDGET)));
    }
    debug_assert!(fields.len() <= FIELDS_MAX);
    let footer = format!(
        "Needs {needed} approval{} · digest {} · expires {} · id {}",
        if needed == 1 { "" } else { "s" },
        one_line(card.short_digest()),
        utc_datetime(card.expires_ms),
        one_line(&card.id),
    );
    json!({
        "title": escaped_line(&title(card), TITLE_MAX),
        "description": body_description(card),
        "color": color(status),
        "fields": fields,
        // Footers are plain text: no markdown to escape, but still one visible line.
        "footer": {"text": fit(&footer, FOOTER_MAX, 1, " ", one_line)},
    })
}

fn button(label: &str, style: u64, custom_id: &str) -> Value {
    let label: String = label.chars().take(BUTTON_LABEL_MAX).collect();
    json!({"type": 2, "style": style, "label": label, "custom_id": custom_id})
}

/// The action row: exactly our buttons, each carrying exactly its signed token.
pub fn components(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    let Some(b) = buttons.filter(|_| status.is_open()) else {
        return json!([]);
    };
    let mut row = vec![button("Approve", SUCCESS, &b.approve), button("Deny", DANGER, &b.deny)];
    if let Some(g) = &b.grant {
        let label = match card.grant_secs {
            Some(secs) => format!("Approve for {}", duration(secs)),
            None => "Approve and allow similar".to_string(),
        };
        row.push(button(&label, PRIMARY, g));
    }
    json!([{"type": 1, "components": row}])
}

/// The whole message body for create and edit.
pub fn message(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    json!({
        "content": "",
        "embeds": [embed(card, status)],
        "components": components(card, status, buttons),
        "allowed_mentions": {"parse": []},
    })
}

/// The ephemeral answer to a clicker.
pub fn reply_text(reply: &Reply) -> String {
    fit(&reply.text, CONTENT_MAX, 20, "\n", |t| escape(&visible(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_nothing_for_markdown() {
        assert_eq!(
            escape("@everyone <@1> **b** [x](y)"),
            "\\@everyone \\<\\@1\\> \\*\\*b\\*\\* \\[x\\]\\(y\\)"
        );
        assert_eq!(code_span("a`b\nc"), "`aˋb c`");
        assert_eq!(code_span("  "), "\\(empty\\)");
        let long = value(&"`".repeat(10_000), 400);
        assert!(discord_len(&long) <= 400);
        assert!(long.contains("more bytes"));
        assert_eq!(long.matches('`').count(), 2, "{long}");
    }
}
