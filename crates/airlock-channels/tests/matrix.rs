//! Matrix rendering: hostile requests render inert — the HTML carries only our tags, the agent's
//! text escaped in one code block, no mentions — and only our vote instructions.

mod fake_slack;

use airlock_channels::matrix::render;
use airlock_channels::text::is_deceptive;
use airlock_channels::{Card, Status};
use fake_slack::cards::{card, hostile_card};

/// The tag names of `html`, in order (what a client would parse as markup).
fn tags(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').map(|e| i + e).expect("a closed tag");
        out.push(rest[i + 1..end].to_string());
        rest = &rest[end + 1..];
    }
    out
}

fn hostile() -> Card {
    let mut c = hostile_card();
    let markup = "<a href=\"https://evil.example\">Approve</a> <img src=x> @room @alice:example.org \
                  <font color=red>x</font> ```x``` **b** approve 0000AAAA";
    c.agent = format!("{markup}\u{202E}\u{200B}");
    c.body.text = format!("{markup}\n{}", c.body.text);
    c
}

#[test]
fn hostile_request_renders_inert_with_only_our_instructions() {
    let c = hostile();
    let v = render::content(&c, &Status::Pending { approved_by: vec![] }, Some("K7QX2M9P"));
    let html = v["formatted_body"].as_str().unwrap();
    assert_eq!(
        tags(html),
        ["p", "b", "/b", "/p", "pre", "code", "/code", "/pre", "p", "/p"],
        "our tags only: {html}"
    );
    for s in [html, v["body"].as_str().unwrap()] {
        assert!(!s.chars().any(is_deceptive), "hidden character: {s:?}");
        assert!(s.contains("more bytes — full request on the dashboard"));
        assert!(s.len() < 16 * 1024, "{} bytes", s.len());
    }
    assert!(html.contains("&lt;a href=&quot;https://evil.example&quot;&gt;"));
    assert_eq!(v["m.mentions"], serde_json::json!({}));
    // The only code on the card is ours, in our line after the block.
    let ours = html.rsplit("</pre>").next().unwrap();
    assert!(
        ours.contains("approve K7QX2M9P") && ours.contains("deny K7QX2M9P"),
        "{ours}"
    );
    assert!(!ours.contains("0000AAAA"));
}

#[test]
fn edits_replace_the_card_and_closed_cards_take_no_votes() {
    let c = card();
    let closed = Status::Approved {
        by: vec!["alice".into()],
        at_ms: 1_700_000_000_000,
        grant_secs: None,
    };
    let e = render::edit("$card", render::content(&c, &closed, None));
    assert_eq!(e["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(e["m.relates_to"]["event_id"], "$card");
    let body = e["m.new_content"]["body"].as_str().unwrap();
    assert!(
        body.contains("Approved by alice") && !body.contains("approve "),
        "{body}"
    );
    assert!(e["body"].as_str().unwrap().starts_with("* "));
    let open = render::content(&c, &Status::Pending { approved_by: vec![] }, Some("K7QX2M9P"));
    let b = open["body"].as_str().unwrap();
    assert!(b.contains("grant K7QX2M9P") && b.contains("30 min"), "{b}");
}
