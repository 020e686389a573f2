//! Plain renderers shared by the terminal (`airlock approvals show/watch`, the demo) and the
//! dashboard, plus the pieces every platform renderer reuses: the status line, UTC times and
//! the quoted, cut body.
//!
//! Every agent-controlled string goes through [`text::visible`] or [`text::one_line`] first
//! (which also turns ESC into a visible `<U+001B>`, so a body cannot drive the terminal), and
//! in HTML through [`html_escape`] after that. Both renderers show the same fields in the same
//! order.

use crate::text::{self, Cut, one_line, visible};
use crate::{BodyKind, Card, Status};

/// Terminal body limits.
pub const TERMINAL_BODY_BYTES: usize = 4 * 1024;
pub const TERMINAL_BODY_LINES: usize = 40;
/// Dashboard list-view body limits (`html_card(.., full = false)`).
pub const HTML_BODY_BYTES: usize = 16 * 1024;
pub const HTML_BODY_LINES: usize = 200;
/// Longest one-line value (a header, a query parameter, an SQL statement) before it is cut
/// with a count: in the terminal, and in the dashboard's list view.
pub const TERMINAL_VALUE_BYTES: usize = 1024;
pub const HTML_VALUE_BYTES: usize = 4096;

/// `&`, `<`, `>`, `"` and `'` as entities: safe in element content and quoted attributes.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The card's body made visible and cut to fit, for every renderer; append
/// [`Cut::notice`] when something was left out.
pub fn quoted_body(card: &Card, max_bytes: usize, max_lines: usize) -> Cut {
    let v = visible(&card.body.text);
    // A trailing newline would only show as an empty quoted line.
    text::truncate(v.strip_suffix('\n').unwrap_or(&v), max_bytes, max_lines)
}

/// `s` on one line, cut to `max_bytes` with the explicit notice when longer.
pub fn one_line_cut(s: &str, max_bytes: usize) -> String {
    let cut = text::truncate(&one_line(s), max_bytes, 1);
    match cut.notice() {
        Some(n) => format!("{} {n}", cut.text),
        None => cut.text,
    }
}

/// (year, month, day, hour, minute, second) in UTC for milliseconds since the Unix epoch.
/// Days to civil date after Howard Hinnant's `civil_from_days`.
pub fn utc_parts(ms: u64) -> (u64, u32, u32, u32, u32, u32) {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
    )
}

/// RFC 3339 with milliseconds, e.g. `2024-05-01T14:03:09.120Z`.
pub fn rfc3339(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", ms % 1000)
}

/// "14:03 UTC".
pub fn utc_hm(ms: u64) -> String {
    let (_, _, _, h, m, _) = utc_parts(ms);
    format!("{h:02}:{m:02} UTC")
}

/// "14:03:22 UTC".
pub fn utc_hms(ms: u64) -> String {
    let (_, _, _, h, m, s) = utc_parts(ms);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

/// "2025-06-01 14:03:22 UTC".
pub fn utc_datetime(ms: u64) -> String {
    let (y, mo, d, h, m, s) = utc_parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02} UTC")
}

/// "90 s" → "1 min 30 s", "15 min", "2 h": exact, so a grant is never shown shorter than it is.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

/// One line for where an approval stands. Without the card the quorum is unknown, so a
/// pending status reads "Waiting: 1 approval so far (alice)"; see [`status_line_for`].
pub fn status_line(status: &Status) -> String {
    match status {
        Status::Pending { approved_by } if approved_by.is_empty() => "Waiting for approval".into(),
        Status::Pending { approved_by } => format!(
            "Waiting: {} approval{} so far ({})",
            approved_by.len(),
            if approved_by.len() == 1 { "" } else { "s" },
            approved_by.join(", ")
        ),
        Status::Approved { by, at_ms, grant_secs } => {
            let who = if by.is_empty() {
                String::new()
            } else {
                format!(" by {}", by.join(", "))
            };
            let grant = grant_secs.map_or(String::new(), |g| {
                format!(" · matching requests allowed for {}", duration(g))
            });
            format!("Approved{who} · {}{grant}", utc_hm(*at_ms))
        }
        Status::Denied { by, at_ms } => format!("Denied by {by} · {}", utc_hm(*at_ms)),
        Status::Expired { at_ms } => format!("Expired · {}", utc_hm(*at_ms)),
        Status::Abandoned { at_ms } => format!("Abandoned (gateway stopped) · {}", utc_hm(*at_ms)),
        Status::Withdrawn { at_ms } => format!("Withdrawn (agent disconnected) · {}", utc_hm(*at_ms)),
        Status::Failed { reason, at_ms } => format!("Refused by airlock: {reason} · {}", utc_hm(*at_ms)),
    }
}

/// [`status_line`] with the card's quorum: "Waiting: 1 of 2 approvals (alice)".
pub fn status_line_for(card: &Card, status: &Status) -> String {
    match status {
        Status::Pending { approved_by } => {
            let names = if approved_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", approved_by.join(", "))
            };
            format!(
                "Waiting: {} of {} approvals{names}",
                approved_by.len(),
                card.approvals_needed()
            )
        }
        other => status_line(other),
    }
}

/// The card's title: the summary's, or "METHOD host".
pub fn title(card: &Card) -> String {
    card.summary_title
        .clone()
        .unwrap_or_else(|| format!("{} {}", card.method, card.host))
}

/// `scheme://host[:port]path`, the port only when not the scheme's default.
pub fn url(card: &Card) -> String {
    let default = matches!((card.scheme.as_str(), card.port), ("https", 443) | ("http", 80));
    let port = if default {
        String::new()
    } else {
        format!(":{}", card.port)
    };
    format!("{}://{}{port}{}", card.scheme, card.host, card.path)
}

fn kind_name(k: BodyKind) -> &'static str {
    match k {
        BodyKind::Empty => "empty",
        BodyKind::Json => "json",
        BodyKind::Form => "form",
        BodyKind::Graphql => "graphql",
        BodyKind::Sql => "sql",
        BodyKind::Text => "text",
        BodyKind::Binary => "binary",
    }
}

/// The card as label/value lines in display order: the request, the summary, (the body), the
/// approval. Values are raw (renderers make them visible and escape them).
struct Layout {
    title: String,
    head: Vec<(String, String)>,
    summary: Vec<(String, String)>,
    tail: Vec<(String, String)>,
}

fn layout(card: &Card, status: &Status) -> Layout {
    let mut head: Vec<(String, String)> = vec![("Agent".into(), card.agent.clone())];
    for r in &card.rules {
        let rule = if r.reason.is_empty() {
            r.name.clone()
        } else {
            format!("{} — {}", r.name, r.reason)
        };
        head.push(("Rule".into(), rule));
        head.push((
            "Approvers".into(),
            format!("{} ({} needed)", r.approvers.join(", "), r.quorum.max(1)),
        ));
    }
    if let Some(g) = card.grant_secs {
        head.push((
            "Grant".into(),
            format!("approving may also allow matching requests for {}", duration(g)),
        ));
    }
    head.push(("Request".into(), format!("{} {}", card.method, url(card))));
    for (k, v) in &card.query {
        head.push(("Query".into(), format!("{k} = {v}")));
    }
    for (k, v) in &card.headers {
        head.push(("Header".into(), format!("{k}: {v}")));
    }
    let bytes = |n: usize| format!("{n} byte{}", if n == 1 { "" } else { "s" });
    let kind = kind_name(card.body.kind);
    let size = match &card.body.decoded {
        Some(d) => format!(
            "{} as sent ({}), {} decoded ({kind})",
            bytes(card.body.size),
            d.encoding,
            bytes(d.size)
        ),
        None => format!("{} ({kind})", bytes(card.body.size)),
    };
    let tail = vec![
        ("Size".into(), size),
        ("Digest".into(), card.short_digest().to_string()),
        ("Expires".into(), utc_hms(card.expires_ms)),
        ("Status".into(), status_line_for(card, status)),
    ];
    Layout {
        title: title(card),
        head,
        summary: card.summary.clone(),
        tail,
    }
}

/// Plain text for `airlock approvals show/watch` and the demo. No control characters from the
/// request reach the terminal.
pub fn terminal(card: &Card, status: &Status) -> String {
    let l = layout(card, status);
    let one = |s: &str| one_line_cut(s, TERMINAL_VALUE_BYTES);
    let mut out = format!("━━ {} ━━\n", one(&l.title));
    let line = |out: &mut String, (k, v): &(String, String)| {
        out.push_str(&format!("{:<11} {}\n", format!("{}:", one(k)), one(v)));
    };
    l.head.iter().for_each(|kv| line(&mut out, kv));
    if !l.summary.is_empty() {
        out.push('\n');
        l.summary.iter().for_each(|kv| line(&mut out, kv));
    }
    if card.body.kind != BodyKind::Empty {
        // Not "Body:", which a summary line may already use for an email's text.
        out.push_str("\nRequest body:\n");
        let cut = quoted_body(card, TERMINAL_BODY_BYTES, TERMINAL_BODY_LINES);
        for body_line in cut.text.split('\n') {
            out.push_str("│ ");
            out.push_str(body_line);
            out.push('\n');
        }
        if let Some(n) = cut.notice() {
            out.push_str(&n);
            out.push('\n');
        }
    }
    l.tail.iter().for_each(|kv| line(&mut out, kv));
    out
}

/// An HTML fragment for the dashboard (no buttons: the dashboard adds its own forms). With
/// `full = false` the body is cut to 16 KiB / 200 lines with a notice; `full = true` shows all.
/// Agent strings only ever appear as escaped element content, never in attributes.
pub fn html_card(card: &Card, status: &Status, full: bool) -> String {
    let l = layout(card, status);
    let max = if full { usize::MAX } else { HTML_VALUE_BYTES };
    let esc = |s: &str| html_escape(&one_line_cut(s, max));
    let state = status.name();
    let mut out = format!(
        "<div class=\"card {state}\">\n<h3 class=\"title\">{}</h3>\n<dl class=\"fields\">\n",
        esc(&l.title)
    );
    for (k, v) in &l.head {
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", esc(k), esc(v)));
    }
    out.push_str("</dl>\n");
    if !l.summary.is_empty() {
        out.push_str("<dl class=\"summary\">\n");
        for (k, v) in &l.summary {
            out.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", esc(k), esc(v)));
        }
        out.push_str("</dl>\n");
    }
    if card.body.kind != BodyKind::Empty {
        let cut = if full {
            quoted_body(card, usize::MAX, usize::MAX)
        } else {
            quoted_body(card, HTML_BODY_BYTES, HTML_BODY_LINES)
        };
        out.push_str(&format!("<pre class=\"body\">{}</pre>\n", html_escape(&cut.text)));
        if let Some(n) = cut.notice() {
            out.push_str(&format!("<p class=\"cut\">{}</p>\n", html_escape(&n)));
        }
    }
    out.push_str("<dl class=\"fields\">\n");
    for (k, v) in &l.tail {
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", esc(k), esc(v)));
    }
    out.push_str("</dl>\n</div>\n");
    out
}
