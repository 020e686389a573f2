//! The card as a Signal message: plain text (Signal formats only through explicit style ranges,
//! which airlock never sends, so nothing in the text is markup or a mention), the plain card of
//! [`crate::ntfy::render::message`] (visible escapes, one-line fields, the body quoted and cut
//! with the explicit "N more bytes" notice) cut to fit one message, and the fixed instruction
//! to reply with the card's code.

use crate::ballot;
use crate::render::{duration, one_line_cut};
use crate::text::truncate;
use crate::{Card, Reply, Status};

/// Signal sends longer texts as an attachment; stay under it.
pub const MAX_TEXT: usize = 2000;
const CARD_BUDGET: usize = 1500;

pub fn card(card: &Card, status: &Status, code: &str) -> String {
    let cut = truncate(&crate::ntfy::render::message(card, status), CARD_BUDGET, usize::MAX);
    let mut text = format!(
        "airlock: approval needed — {}\n\n{}",
        crate::ntfy::render::title(card),
        cut.text
    );
    if let Some(n) = cut.notice() {
        text.push_str(&format!("\n{n}"));
    }
    let grant = card
        .grant_secs
        .map(|s| format!("approve and allow matching requests for {}", duration(s)));
    text.push_str(&format!("\n\n{}.", ballot::instructions(code, grant.as_deref())));
    text.chars().take(MAX_TEXT).collect()
}

/// The closing message (Signal's edits are limited; a short message says how it ended).
pub fn closing(card: &Card, status: &Status, code: &str) -> String {
    format!(
        "{} — approval {} (code {code})",
        one_line_cut(&crate::render::status_line_for(card, status), 300),
        one_line_cut(&card.id, 40)
    )
}

pub fn answer(reply: &Reply) -> String {
    one_line_cut(&reply.text, 1000)
}
