//! The emailed card: a subject, a plain-text part and an HTML part, both rendered by the
//! gateway from its own parse of the request, with the approver's links at the end.
//!
//! Agent text reaches the text part through the terminal renderer (one line per value, body
//! lines quoted with "│ ", deceptive characters made visible) and the HTML part only as
//! escaped element content (the dashboard's renderer). Link URLs are built from the
//! operator's `base_url`, the person's address and the signed token alone, never from the
//! request, so a body that imitates a button points nowhere but where it says.

use crate::render::{self, html_escape, one_line_cut};
use crate::{Buttons, Card, Status};

use super::verify::{PATH, link_query};

/// Longest subject line (bytes of the title after "[airlock] Approval needed: ").
pub const SUBJECT_BYTES: usize = 120;

/// The landing-page links of one approver's card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub approve: String,
    pub deny: String,
    pub grant: Option<String>,
}

impl Links {
    pub fn new(base_url: &str, address: &str, buttons: &Buttons) -> Links {
        let base = base_url.trim_end_matches('/');
        let link = |token: &str| format!("{base}{PATH}?{}", link_query(address, token));
        Links {
            approve: link(&buttons.approve),
            deny: link(&buttons.deny),
            grant: buttons.grant.as_deref().map(link),
        }
    }
}

pub fn subject(card: &Card) -> String {
    format!(
        "[airlock] Approval needed: {}",
        one_line_cut(&render::title(card), SUBJECT_BYTES)
    )
}

const NOTE: &str = "Each link opens a page on airlock that shows the whole request and asks you to \
                    confirm; opening a link never votes by itself. The links are yours alone: do not forward this email.";

pub fn text(card: &Card, links: &Links) -> String {
    let status = Status::Pending { approved_by: vec![] };
    let mut out = render::terminal(card, &status);
    out.push_str("\n────────────────────────────────────────\n");
    out.push_str(&format!("Approve:  {}\n", links.approve));
    if let (Some(url), Some(secs)) = (&links.grant, card.grant_secs) {
        out.push_str(&format!(
            "Approve and allow matching requests for {}:\n          {url}\n",
            render::duration(secs)
        ));
    }
    out.push_str(&format!("Deny:     {}\n\n{NOTE}\n", links.deny));
    out
}

/// Inline styles only: mail clients drop `<style>` blocks and never run scripts.
pub fn html(card: &Card, links: &Links) -> String {
    let status = Status::Pending { approved_by: vec![] };
    let button = |url: &str, label: &str, color: &str| {
        format!(
            "<a href=\"{}\" style=\"display:inline-block;padding:8px 18px;margin:4px 8px 4px 0;border-radius:4px;\
             background:{color};color:#fff;text-decoration:none;font-weight:600\">{}</a>",
            html_escape(url),
            html_escape(label)
        )
    };
    let mut buttons = button(&links.approve, "Approve…", "#1f7a38");
    if let (Some(url), Some(secs)) = (&links.grant, card.grant_secs) {
        buttons.push_str(&button(
            url,
            &format!("Approve + allow for {}…", render::duration(secs)),
            "#1f5f7a",
        ));
    }
    buttons.push_str(&button(&links.deny, "Deny…", "#b3261e"));
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font:15px/1.45 sans-serif;color:#1d1d1f\">\n\
         <p style=\"color:#555\">An agent's request is held by airlock until enough approvers decide.</p>\n\
         {card}<p>{buttons}</p>\n<p style=\"color:#555;font-size:13px\">{note}</p>\n</body></html>\n",
        title = html_escape(&subject(card)),
        card = render::html_card(card, &status, false),
        note = html_escape(NOTE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buttons() -> Buttons {
        Buttons {
            approve: "id1.a.ff.AAA".into(),
            deny: "id1.d.ff.BBB".into(),
            grant: Some("id1.g.ff.CCC".into()),
        }
    }

    #[test]
    fn links_carry_the_address_and_token_only() {
        let l = Links::new("https://airlock.example.com/", "alice+ops@example.com", &buttons());
        assert_eq!(
            l.approve,
            "https://airlock.example.com/email/vote?a=alice%2Bops%40example.com&t=id1.a.ff.AAA"
        );
        assert!(l.deny.ends_with("&t=id1.d.ff.BBB"));
        assert!(l.grant.unwrap().ends_with("&t=id1.g.ff.CCC"));
    }
}
