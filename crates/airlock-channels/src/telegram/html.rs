//! Cards in Telegram's `HTML` parse mode (invariant 8). Every agent-controlled string is made
//! visible (`crate::text`) and then escaped, so the only tags in a message are the few this
//! module writes (`<b>`, `<code>`, `<pre>`), and the only entities are `&lt; &gt; &amp; &quot;`.
//! Buttons come only from [`Buttons`].

use serde_json::{Value, json};

use crate::text::{self, Cut};
use crate::{Buttons, Card, Status};

/// Telegram's limit on message text after entity parsing.
pub const MAX_TEXT_LEN: usize = 4096;
/// What the renderer aims for, leaving room for counting differences (Telegram counts
/// UTF-16 code units; so do we, which is never less than characters).
const BUDGET: usize = 3900;
/// Room kept for the "… N more bytes" notice after the body.
const NOTICE_RESERVE: usize = 80;
/// Caps for one-line fields, in bytes of their visible form.
const SHORT: usize = 120;
const FIELD: usize = 300;
const PATH: usize = 600;
/// Lines of body shown at most: a long payload stays scannable; the dashboard has the rest.
const BODY_LINES: usize = 60;
/// The head (everything before the body) may use at most this much, so the body always has room.
const HEAD_BUDGET: usize = 2600;

/// Escapes text for Telegram's HTML mode: `&`, `<`, `>` must be entities, and `"` is escaped
/// too so text can never close an attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Length of `html` as Telegram counts it after parsing: tags removed, each entity one unit,
/// in UTF-16 code units. Only valid for this module's output (our tags, our four entities).
pub(crate) fn plain_len(html: &str) -> usize {
    let mut n = 0;
    let mut chars = html.chars();
    while let Some(c) = chars.next() {
        match c {
            '<' => {
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                }
            }
            '&' => {
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                }
                n += 1;
            }
            c => n += c.len_utf16(),
        }
    }
    n
}

/// An agent-controlled one-line field: visible, folded to one line, capped, escaped.
fn field(s: &str, max_bytes: usize) -> String {
    let shown = text::one_line(s);
    let cut = text::truncate(&shown, max_bytes, 1);
    let mut out = escape(&cut.text);
    if cut.omitted_bytes > 0 {
        out.push('…');
    }
    out
}

/// Message text under construction, with its parsed length kept alongside.
struct Out {
    html: String,
    plain: usize,
}

impl Out {
    fn line(&mut self, html: &str) {
        self.plain += plain_len(html) + 1;
        self.html.push_str(html);
        self.html.push('\n');
    }

    /// A heading and its items, stopping (with a count of what is left) at the head budget.
    fn list(&mut self, heading: &str, items: &[String]) {
        if items.is_empty() {
            return;
        }
        self.line(heading);
        for (i, item) in items.iter().enumerate() {
            let rest = items.len() - i;
            if self.plain + plain_len(item) + 1 > HEAD_BUDGET {
                self.line(&format!("  … {rest} more on the dashboard"));
                return;
            }
            self.line(item);
        }
    }
}

fn url(card: &Card) -> String {
    let scheme = field(&card.scheme, 16);
    let host = if card.host.contains(':') {
        format!("[{}]", card.host)
    } else {
        card.host.clone()
    };
    let default_port = matches!((card.scheme.as_str(), card.port), ("https", 443) | ("http", 80));
    let port = if default_port {
        String::new()
    } else {
        format!(":{}", card.port)
    };
    format!("{scheme}://{}{port}{}", field(&host, FIELD), field(&card.path, PATH))
}

/// The body, cut so its visible form fits `budget` units. Cutting happens on the original
/// text, so the notice counts the request's own bytes, not those of the `<U+…>` markers.
fn body_cut(s: &str, budget: usize) -> (String, Cut) {
    let mut max = budget;
    loop {
        let cut = text::truncate(s, max, BODY_LINES);
        let shown = text::visible(&cut.text);
        let len: usize = shown.chars().map(char::len_utf16).sum();
        if len <= budget || max == 0 {
            return (shown, cut);
        }
        // Visible markers expanded the text: shrink in proportion and try again.
        max = (max * budget / len).min(max - 1);
    }
}

/// The message text for a card in a given status (a pure function, tested directly).
pub fn message_html(card: &Card, status: &Status) -> String {
    let mut out = Out {
        html: String::with_capacity(4096),
        plain: 0,
    };
    let title = match &card.summary_title {
        Some(t) => field(t, SHORT),
        None => format!(
            "Approval needed: {} {}",
            field(&card.method, 32),
            field(&card.host, SHORT)
        ),
    };
    out.line(&format!("<b>{title}</b>"));
    out.line(&format!("Agent: <code>{}</code>", field(&card.agent, SHORT)));
    for rule in &card.rules {
        // Rule lines come from the operator's config, escaped all the same.
        out.line(&format!(
            "Rule <b>{}</b>: {}",
            field(&rule.name, SHORT),
            field(&rule.reason, FIELD)
        ));
        let approvers: Vec<String> = rule.approvers.iter().map(|a| field(a, SHORT)).collect();
        let n = rule.quorum.max(1);
        let s = if n == 1 { "" } else { "s" };
        out.line(&format!("Approvers: {} · {n} approval{s} needed", approvers.join(", ")));
    }
    out.line(&format!("<code>{} {}</code>", field(&card.method, 32), url(card)));

    let query: Vec<String> = card
        .query
        .iter()
        .map(|(k, v)| format!("  <code>{}</code> = {}", field(k, SHORT), field(v, FIELD)))
        .collect();
    out.list("Query:", &query);
    let headers: Vec<String> = card
        .headers
        .iter()
        .map(|(k, v)| format!("  {}: {}", field(k, SHORT), field(v, FIELD)))
        .collect();
    out.list("Headers:", &headers);
    let summary: Vec<String> = card
        .summary
        .iter()
        .map(|(k, v)| format!("<b>{}:</b> {}", field(k, SHORT), field(v, FIELD)))
        .collect();
    out.list("Summary:", &summary);

    let tail = tail_lines(card, status);
    let budget = BUDGET.saturating_sub(out.plain + plain_len(&tail) + NOTICE_RESERVE);
    let (shown, cut) = body_cut(&card.body.text, budget);
    if !shown.is_empty() {
        out.line(&format!("<pre>{}</pre>", escape(&shown)));
    }
    if let Some(notice) = cut.notice() {
        out.line(&escape(&notice));
    }
    out.html.push_str(&tail);
    out.html
}

/// Size, digest, expiry and status: the lines after the body.
fn tail_lines(card: &Card, status: &Status) -> String {
    let mut kind = serde_json::to_value(card.body.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if let Some(ct) = &card.body.content_type {
        kind = format!("{kind}, {}", field(ct, SHORT));
    }
    format!(
        "Body: {} bytes ({kind})\nDigest <code>{}</code> · expires {} · id <code>{}</code>\n{}",
        card.body.size,
        escape(card.short_digest()),
        date_time(card.expires_ms),
        escape(&card.id),
        status_line(card, status),
    )
}

fn names(v: &[String]) -> String {
    v.iter().map(|n| field(n, SHORT)).collect::<Vec<_>>().join(", ")
}

/// One line saying where the approval stands.
pub fn status_line(card: &Card, status: &Status) -> String {
    match status {
        Status::Pending { approved_by } if approved_by.is_empty() => "⏳ Waiting for approval".to_string(),
        Status::Pending { approved_by } => format!(
            "⏳ {} of {} approvals: {}",
            approved_by.len(),
            card.approvals_needed(),
            names(approved_by)
        ),
        Status::Approved { by, at_ms, grant_secs } => {
            let grant = grant_secs
                .map(|s| format!(" · similar requests allowed for {}", duration(s)))
                .unwrap_or_default();
            format!("✅ <b>Approved</b> by {} · {}{grant}", names(by), time_of_day(*at_ms))
        }
        Status::Denied { by, at_ms } => {
            format!("❌ <b>Denied</b> by {} · {}", field(by, SHORT), time_of_day(*at_ms))
        }
        Status::Expired { at_ms } => format!("⌛ <b>Expired</b> · {}", time_of_day(*at_ms)),
        Status::Abandoned { at_ms } => {
            format!("⚠️ <b>Abandoned</b> — gateway stopped · {}", time_of_day(*at_ms))
        }
        Status::Withdrawn { at_ms } => {
            format!("↩️ <b>Withdrawn</b> — agent disconnected · {}", time_of_day(*at_ms))
        }
        Status::Failed { reason, at_ms } => {
            format!(
                "⛔ <b>Refused by airlock</b>: {} · {}",
                field(reason, SHORT),
                time_of_day(*at_ms)
            )
        }
    }
}

/// "15 min", "2 h", "1 h 30 min", "45 s".
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s < 3600 => format!("{} min", s.div_ceil(60)),
        s => format!("{} h {} min", s / 3600, (s % 3600).div_ceil(60)),
    }
}

fn button(text: &str, token: &str) -> Value {
    debug_assert!((1..=crate::token::MAX_LEN).contains(&token.len()));
    json!({ "text": text, "callback_data": token })
}

/// The inline keyboard: Approve and Deny, and "Approve for N min" when a grant is offered.
/// Only the signed tokens from `buttons` go into `callback_data`.
pub fn keyboard(buttons: &Buttons, grant_secs: Option<u64>) -> Value {
    let mut rows = vec![json!([
        button("✅ Approve", &buttons.approve),
        button("❌ Deny", &buttons.deny)
    ])];
    if let Some(grant) = &buttons.grant {
        let label = match grant_secs {
            Some(s) => format!("✅ Approve for {}", duration(s)),
            None => "✅ Approve and allow similar".to_string(),
        };
        rows.push(json!([button(&label, grant)]));
    }
    json!({ "inline_keyboard": rows })
}

fn time_of_day(ms: u64) -> String {
    crate::render::utc_hm(ms)
}

fn date_time(ms: u64) -> String {
    let (y, mo, d, h, mi, _) = crate::render::utc_parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        use crate::render::rfc3339;
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_714_572_189_120), "2024-05-01T14:03:09.120Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(date_time(1_714_572_189_120), "2024-05-01 14:03 UTC");
    }

    #[test]
    fn durations_and_lengths() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(900), "15 min");
        assert_eq!(duration(7200), "2 h");
        assert_eq!(duration(5400), "1 h 30 min");
        assert_eq!(plain_len("<b>a&amp;b</b>\n<pre>😀</pre>"), 6);
        assert_eq!(
            escape("<a href=\"x\">&amp;</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;amp;&lt;/a&gt;"
        );
    }
}
