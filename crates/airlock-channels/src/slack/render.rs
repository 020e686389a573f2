//! Block Kit rendering of a [`Card`] (invariant 8).
//!
//! Everything shown comes from `Card` fields the gateway computed. Every string that may
//! come from the agent goes through [`crate::text::visible`] / [`crate::text::one_line`]
//! and then [`escape`] (Slack's `&` `<` `>` entities), which turns `<!here>`, `<@U…>` and
//! `<http://evil|label>` into inert text. Agent strings are put in `plain_text` objects
//! (never parsed as markup) except the body, which needs a `mrkdwn` code block: there
//! triple backticks are also replaced (see [`FENCE_STANDIN`]). Long text is cut with
//! [`crate::text::truncate`] and an explicit "N more bytes" notice so that every
//! Block Kit limit holds whatever the agent sends.

use serde_json::{Value, json};

use crate::text::{one_line, truncate, visible};
use crate::{Buttons, Card, Reply, Status};

/// Header block `plain_text` limit.
pub const HEADER_MAX: usize = 150;
/// Section `text` limit (also used for context elements and ephemeral replies).
pub const SECTION_MAX: usize = 3000;
/// Limit for each section field.
pub const FIELD_MAX: usize = 2000;
/// Fields per section.
pub const MAX_FIELDS: usize = 10;
/// Blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Elements per context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Button text limit.
pub const BUTTON_TEXT_MAX: usize = 75;
/// Button value limit.
pub const BUTTON_VALUE_MAX: usize = 2000;
/// Top-level `text` limit of chat.postMessage / chat.update.
pub const FALLBACK_MAX: usize = 40_000;

pub const ACTION_APPROVE: &str = "airlock_approve";
pub const ACTION_DENY: &str = "airlock_deny";
pub const ACTION_GRANT: &str = "airlock_grant";

/// What a run of three backticks in the body is shown as: three U+02CB MODIFIER LETTER GRAVE
/// ACCENT. It looks like the original but cannot close the code block the body sits in; the
/// card says so whenever it happens. (Zero-width tricks are out: they are what we expose.)
pub const FENCE_STANDIN: &str = "\u{2cb}\u{2cb}\u{2cb}";

const BODY_MAX_LINES: usize = 40;
/// Per-entry budget for query parameters and headers, so one huge value cannot crowd out the rest.
const ENTRY_MAX: usize = 400;
/// Per-field budget for summary lines (To, Subject, …).
const SUMMARY_FIELD_MAX: usize = 500;
/// Room kept for a "… N more" line at the end of a list.
const MORE_RESERVE: usize = 80;

/// Slack's escaping: the three control characters become entities; nothing else changes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Length as Slack may count it. UTF-16 code units are never fewer than characters, so a
/// text within this length is within Slack's character limits however it counts.
pub fn slack_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Escaped one-line form of an agent string.
fn line(s: &str) -> String {
    escape(&one_line(s))
}

/// Renders `raw` with `show` (which makes it visible, escapes and possibly wraps it), cutting
/// `raw` until the result plus the "N more bytes" notice (joined by `sep`) fits `budget`.
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
            out.push_str(&notice);
        }
        let len = slack_len(&out);
        if len <= budget {
            return out;
        }
        if cut.text.is_empty() {
            // Only the notice is left and even that is too long: the budget is tiny.
            return out.chars().take(budget).collect();
        }
        // Escaping and visible markers grow text unevenly: shrink in proportion, and always
        // by at least one byte so this ends.
        max_bytes = (cut.text.len() * budget / len).min(cut.text.len() - 1);
    }
}

fn one_line_fit(raw: &str, budget: usize) -> String {
    fit(raw, budget, usize::MAX, " ", line)
}

fn plain(text: String) -> Value {
    // `emoji: false`: agent text like ":white_check_mark:" stays literal.
    json!({"type": "plain_text", "text": text, "emoji": false})
}

/// Joins already-escaped lines under a title until `budget`, then says how many were left out.
fn list_text(title: &str, lines: Vec<String>, noun: &str, budget: usize) -> String {
    let mut out = title.to_string();
    let total = lines.len();
    for (i, l) in lines.into_iter().enumerate() {
        if slack_len(&out) + 1 + slack_len(&l) + MORE_RESERVE > budget {
            out.push_str(&format!(
                "\n… {} more {noun} — full request on the dashboard",
                total - i
            ));
            break;
        }
        out.push('\n');
        out.push_str(&l);
    }
    out
}

fn pairs_lines(pairs: &[(String, String)], sep: &str) -> Vec<String> {
    pairs
        .iter()
        .map(|(k, v)| one_line_fit(&format!("{k}{sep}{v}"), ENTRY_MAX))
        .collect()
}

/// The card's title: the gateway's summary title, or "Approval needed: METHOD host".
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

/// "YYYY-MM-DD HH:MM UTC" for a Unix time in milliseconds.
pub fn utc_datetime(ms: u64) -> String {
    let (y, m, d, h, min, _) = crate::render::utc_parts(ms);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02} UTC")
}

/// "HH:MM UTC".
pub fn utc_time(ms: u64) -> String {
    let rem = ms / 1000 % 86_400;
    format!("{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// "45 s", "30 min", "1 h 30 min" (the same wording on every surface).
pub fn duration(secs: u64) -> String {
    crate::render::duration(secs)
}

/// One line saying where an approval stands (unescaped; names come from the configuration).
/// `None` for a pending card nobody has voted on yet.
pub fn status_line(status: &Status, needed: u32) -> Option<String> {
    Some(match status {
        Status::Pending { approved_by } if approved_by.is_empty() => return None,
        Status::Pending { approved_by } => format!(
            "Approved so far by {} — {} of {needed} approvals",
            approved_by.join(", "),
            approved_by.len()
        ),
        Status::Approved { by, at_ms, grant_secs } => {
            let mut s = format!("Approved by {} · {}", by.join(", "), utc_time(*at_ms));
            if let Some(g) = grant_secs {
                s.push_str(&format!(" · matching requests allowed for {}", duration(*g)));
            }
            s
        }
        Status::Denied { by, at_ms } => format!("Denied by {by} · {}", utc_time(*at_ms)),
        Status::Expired { at_ms } => format!("Expired · {}", utc_time(*at_ms)),
        Status::Abandoned { at_ms } => {
            format!("Abandoned — gateway stopped · {}", utc_time(*at_ms))
        }
        Status::Withdrawn { at_ms } => {
            format!("Withdrawn — agent disconnected · {}", utc_time(*at_ms))
        }
        Status::Failed { reason, at_ms } => format!("Refused by airlock: {reason} · {}", utc_time(*at_ms)),
    })
}

fn header_block(card: &Card) -> Value {
    json!({"type": "header", "text": plain(one_line_fit(&title(card), HEADER_MAX))})
}

fn context_block(card: &Card) -> Value {
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
    let rule_label = if card.rules.len() == 1 { "Rule" } else { "Rules" };
    let needed = card.approvals_needed();
    json!({"type": "context", "elements": [
        plain(one_line_fit(&format!("Agent: {}", card.agent), FIELD_MAX)),
        plain(one_line_fit(&format!("{rule_label}: {}", rules.join(" · ")), FIELD_MAX)),
        plain(escape(&format!(
            "Needs {needed} approval{} · digest {} · expires {} · id {}",
            if needed == 1 { "" } else { "s" },
            one_line(card.short_digest()),
            utc_datetime(card.expires_ms),
            one_line(&card.id),
        ))),
    ]})
}

fn request_block(card: &Card) -> Value {
    let request = format!("{} {}", card.method, url(card));
    json!({"type": "section", "text": plain(one_line_fit(&request, SECTION_MAX))})
}

fn list_block(title: &str, noun: &str, pairs: &[(String, String)], sep: &str) -> Value {
    let text = list_text(title, pairs_lines(pairs, sep), noun, SECTION_MAX);
    json!({"type": "section", "text": plain(text)})
}

fn summary_block(card: &Card) -> Value {
    let n = card.summary.len();
    let shown = if n > MAX_FIELDS { MAX_FIELDS - 1 } else { n };
    let mut fields: Vec<Value> = card.summary[..shown]
        .iter()
        .map(|(label, value)| {
            let label = one_line_fit(label, 200);
            let value = one_line_fit(value, SUMMARY_FIELD_MAX);
            plain(format!("{label}:\n{value}"))
        })
        .collect();
    if n > shown {
        fields.push(plain(format!(
            "… {} more lines — full request on the dashboard",
            n - shown
        )));
    }
    json!({"type": "section", "fields": fields})
}

/// The body inside a mrkdwn code block: visible, escaped, fences neutralised.
fn fenced(raw: &str) -> String {
    let inner = escape(&visible(raw)).replace("```", FENCE_STANDIN);
    format!("```\n{inner}\n```")
}

fn body_blocks(card: &Card) -> Vec<Value> {
    let b = &card.body;
    let kind = serde_json::to_value(b.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut about = format!("Body · {kind} · {} bytes", b.size);
    if let Some(ct) = &b.content_type {
        about = format!("Body · {ct} · {kind} · {} bytes", b.size);
    }
    if b.text.contains("```") {
        about.push_str(&format!(" · ``` shown as {FENCE_STANDIN}"));
    }
    let mut out = vec![json!({"type": "context", "elements": [plain(one_line_fit(&about, FIELD_MAX))]})];
    if !b.text.is_empty() {
        let text = fit(&b.text, SECTION_MAX, BODY_MAX_LINES, "\n", fenced);
        out.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    out
}

fn button(label: &str, action_id: &str, value: &str, style: Option<&str>) -> Value {
    let label: String = label.chars().take(BUTTON_TEXT_MAX).collect();
    let mut b = json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": false},
        "value": value,
    });
    if let Some(style) = style {
        b["style"] = json!(style);
    }
    b
}

fn actions_block(card: &Card, buttons: &Buttons) -> Value {
    let mut elements = vec![
        button("Approve", ACTION_APPROVE, &buttons.approve, Some("primary")),
        button("Deny", ACTION_DENY, &buttons.deny, Some("danger")),
    ];
    if let Some(grant) = &buttons.grant {
        let label = match card.grant_secs {
            Some(secs) => format!("Approve for {}", duration(secs)),
            None => "Approve and allow similar".to_string(),
        };
        elements.push(button(&label, ACTION_GRANT, grant, None));
    }
    json!({"type": "actions", "elements": elements})
}

/// The card as Block Kit blocks. The actions block (exactly our buttons, carrying exactly the
/// signed tokens) is present only while the status is open and buttons are given.
pub fn blocks(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    let mut out = vec![header_block(card), context_block(card), request_block(card)];
    if !card.query.is_empty() {
        out.push(list_block("Query", "parameters", &card.query, " = "));
    }
    if !card.headers.is_empty() {
        out.push(list_block("Headers", "headers", &card.headers, ": "));
    }
    if !card.summary.is_empty() {
        out.push(summary_block(card));
    }
    out.extend(body_blocks(card));
    if let Some(s) = status_line(status, card.approvals_needed()) {
        let text = fit(&s, SECTION_MAX, usize::MAX, " ", line);
        out.push(json!({"type": "section", "text": {"type": "plain_text", "text": text, "emoji": true}}));
    }
    if let (true, Some(b)) = (status.is_open(), buttons) {
        out.push(actions_block(card, b));
    }
    debug_assert!(out.len() <= MAX_BLOCKS);
    Value::Array(out)
}

/// The message's top-level `text`: what notifications and screen readers show.
pub fn fallback(card: &Card, status: &Status) -> String {
    let mut s = format!("{} — {} {} (agent {})", title(card), card.method, card.host, card.agent);
    if let Some(st) = status_line(status, card.approvals_needed()) {
        s.push_str(" — ");
        s.push_str(&st);
    }
    one_line_fit(&s, 1000.min(FALLBACK_MAX))
}

/// The text of an ephemeral answer to a clicker.
pub fn reply_text(reply: &Reply) -> String {
    fit(&reply.text, SECTION_MAX, 20, "\n", |t| escape(&visible(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_fitting() {
        assert_eq!(escape("a & <b> <!here>"), "a &amp; &lt;b&gt; &lt;!here&gt;");
        let s = fit(&"<".repeat(10_000), 3000, usize::MAX, " ", line);
        assert!(slack_len(&s) <= 3000, "{}", slack_len(&s));
        assert!(s.contains("more bytes"));
        assert!(!s.contains('<'));
        // Never cut inside an entity.
        assert!(s.split(' ').next().unwrap_or("").ends_with("&lt;"));
        let tiny = fit("x".repeat(100).as_str(), 10, 1, " ", line);
        assert!(slack_len(&tiny) <= 10);
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_datetime(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc_datetime(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc_time(1_700_000_000_000), "22:13 UTC");
        assert_eq!(duration(1800), "30 min");
        assert_eq!(duration(7200), "2 h");
        assert_eq!(duration(90), "1 min 30 s");
        assert_eq!(duration(5), "5 s");
    }

    #[test]
    fn fences_cannot_be_closed_from_inside() {
        let f = fenced("a```b````c`");
        assert_eq!(f.matches("```").count(), 2, "{f}");
    }
}
