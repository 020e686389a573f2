//! The card as a WhatsApp message. WhatsApp has no escape for its formatting (`*bold*`,
//! `_italic_`, `~strike~`, monospace), so every agent-controlled string goes into one
//! monospace block (```…```), where none of it applies, with any run of three backticks
//! replaced by a look-alike that cannot close the block. The interactive message is a compact
//! card (body ≤ 1,024 characters: the title, agent, rule, request line, a short body preview
//! and the digest, each cut with the explicit "N more bytes" notice) and a link to the
//! dashboard page showing the whole request; its reply buttons (at most 3, titles ≤ 20
//! characters) carry exactly the signed tokens.
//!
//! Outside the 24-hour window only an approved template may be sent: its body variables are
//! one-line values with WhatsApp's formatting characters replaced by full-width look-alikes,
//! and its quick-reply buttons' payloads are the tokens.

use serde_json::{Value, json};

use crate::render::{duration, one_line_cut, quoted_body, status_line_for, title, url, utc_hm};
use crate::slack::render::FENCE_STANDIN;
use crate::text::{one_line, truncate};
use crate::{BodyKind, Buttons, Card, Reply, Status};

/// WhatsApp's limits for an interactive reply-button message.
pub const BODY_MAX_CHARS: usize = 1024;
pub const BUTTON_TITLE_MAX: usize = 20;
pub const MAX_BUTTONS: usize = 3;
pub const FOOTER_MAX: usize = 60;
pub const HEADER_MAX: usize = 60;
/// Bytes the monospace block may hold (bytes ≥ characters, so the character limit holds).
const BLOCK_BUDGET: usize = 720;
const FIELD_MAX: usize = 160;
const PREVIEW_BYTES: usize = 160;
const PREVIEW_LINES: usize = 3;
/// A template variable: one line, and short.
const PARAM_MAX: usize = 200;

/// The dashboard page of one approval.
pub fn dashboard_link(public_url: &str, card: &Card) -> String {
    format!(
        "{}/dashboard/approvals/{}",
        public_url.trim_end_matches('/'),
        one_line(&card.id)
    )
}

/// Agent text in a monospace block nothing inside can close.
fn block(text: &str) -> String {
    format!("```{}```", text.replace("```", FENCE_STANDIN))
}

/// The compact card's agent-controlled lines, cut to the block budget.
fn compact(card: &Card) -> String {
    let mut lines = vec![
        one_line_cut(&title(card), FIELD_MAX),
        format!("Agent: {}", one_line_cut(&card.agent, FIELD_MAX)),
    ];
    for r in &card.rules {
        lines.push(format!(
            "Rule: {}",
            one_line_cut(&format!("{} — {}", r.name, r.reason), FIELD_MAX)
        ));
    }
    lines.push(one_line_cut(&format!("{} {}", card.method, url(card)), FIELD_MAX));
    for (k, v) in card.summary.iter().take(3) {
        lines.push(one_line_cut(&format!("{k}: {v}"), FIELD_MAX));
    }
    if card.body.kind != BodyKind::Empty {
        let cut = quoted_body(card, PREVIEW_BYTES, PREVIEW_LINES);
        lines.push(format!("Body ({} bytes):", card.body.size));
        lines.extend(cut.text.split('\n').map(|l| format!("| {l}")));
        if let Some(n) = cut.notice() {
            lines.push(n);
        }
    }
    let text = lines.join("\n");
    let cut = truncate(&text, BLOCK_BUDGET, usize::MAX);
    match cut.notice() {
        Some(n) => format!("{}\n{n}", cut.text),
        None => cut.text,
    }
}

/// The interactive message's body text.
pub fn body(card: &Card, status: &Status, public_url: &str) -> String {
    let s = format!(
        "{}\nDigest {} · expires {}\n{}\nWhole request: {}",
        block(&compact(card)),
        one_line(card.short_digest()),
        utc_hm(card.expires_ms),
        one_line_cut(&status_line_for(card, status), 120),
        dashboard_link(public_url, card),
    );
    // The budgets above keep this far below the limit; never over it, whatever the inputs.
    s.chars().take(BODY_MAX_CHARS).collect()
}

/// "Approve for 30 min", or a shorter label when that would not fit in 20 characters.
pub fn grant_title(card: &Card) -> String {
    match card.grant_secs.map(|s| format!("Approve {}", duration(s))) {
        Some(t) if t.chars().count() <= BUTTON_TITLE_MAX => t,
        _ => "Approve + allow more".into(),
    }
}

/// The reply buttons: ids are the tokens, titles fixed strings.
pub fn buttons(card: &Card, b: &Buttons) -> Value {
    let mut out = vec![
        json!({"type": "reply", "reply": {"id": b.approve, "title": "Approve"}}),
        json!({"type": "reply", "reply": {"id": b.deny, "title": "Deny"}}),
    ];
    if let Some(g) = &b.grant {
        out.push(json!({"type": "reply", "reply": {"id": g, "title": grant_title(card)}}));
    }
    Value::Array(out)
}

/// The `POST /{phone_number_id}/messages` body of an interactive card.
pub fn interactive(to: &str, card: &Card, b: &Buttons, public_url: &str) -> Value {
    let status = Status::Pending { approved_by: vec![] };
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "airlock: approval needed"},
            "body": {"text": body(card, &status, public_url)},
            "footer": {"text": format!("Approval {}", one_line_cut(&card.id, 40))},
            "action": {"buttons": buttons(card, b)},
        },
    })
}

/// A template variable: one line, no WhatsApp formatting, short.
pub fn param(s: &str) -> String {
    let flat: String = one_line(s)
        .chars()
        .map(|c| match c {
            '*' => '＊',
            '_' => '＿',
            '~' => '～',
            '`' => '｀',
            c => c,
        })
        .collect();
    // Templates refuse more than four spaces in a row.
    let flat = flat.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    one_line_cut(&flat, PARAM_MAX)
}

/// The template message: body variables {{1}} title, {{2}} agent, {{3}} rule, {{4}} digest,
/// {{5}} dashboard link; quick-reply button 0 approves, 1 denies.
pub fn template(to: &str, name: &str, language: &str, card: &Card, b: &Buttons, public_url: &str) -> Value {
    let rules: Vec<String> = card.rules.iter().map(|r| r.name.clone()).collect();
    let text = |s: String| json!({"type": "text", "text": s});
    let quick = |i: usize, token: &str| {
        json!({"type": "button", "sub_type": "quick_reply", "index": i.to_string(),
               "parameters": [{"type": "payload", "payload": token}]})
    };
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": language},
            "components": [
                {"type": "body", "parameters": [
                    text(param(&title(card))),
                    text(param(&card.agent)),
                    text(param(&rules.join(", "))),
                    text(param(card.short_digest())),
                    text(dashboard_link(public_url, card)),
                ]},
                quick(0, &b.approve),
                quick(1, &b.deny),
            ],
        },
    })
}

/// A plain text message, as a reply to `context` when given.
pub fn text_message(to: &str, text: &str, context: Option<&str>) -> Value {
    let mut m = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": false, "body": text},
    });
    if let Some(c) = context {
        m["context"] = json!({"message_id": c});
    }
    m
}

/// The short closing reply to a card (WhatsApp cannot edit a sent message).
pub fn closing(card: &Card, status: &Status) -> String {
    format!(
        "{} — approval {}",
        one_line_cut(&status_line_for(card, status), 300),
        one_line_cut(&card.id, 40)
    )
}

/// The answer to a press.
pub fn reply_text(reply: &Reply) -> String {
    one_line_cut(&reply.text, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_and_params_are_plain() {
        let b = block("a```b````c");
        assert_eq!(b.matches("```").count(), 2, "{b}");
        assert_eq!(param("*x*  _y_\n~z~ `w`"), "＊x＊ ＿y＿ ～z～ ｀w｀");
        assert!(param(&"x".repeat(1000)).contains("more bytes"));
    }
}
