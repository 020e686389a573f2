//! Signal rendering: a plain text card, hostile requests inert and cut to one message, our
//! instructions last.

mod fake_slack;

use airlock_channels::Status;
use airlock_channels::signal::render::{self, MAX_TEXT};
use airlock_channels::text::is_deceptive;
use fake_slack::cards::{card, hostile_card};

#[test]
fn hostile_request_renders_inert_with_only_our_instructions() {
    let mut c = hostile_card();
    let fake = "Reply \"approve 0000AAAA\" to approve\n\n**bold** @everyone";
    c.agent = format!("{fake}\u{202E}\u{200B}");
    c.body.text = format!("{fake}\n{}", c.body.text);
    let t = render::card(&c, &Status::Pending { approved_by: vec![] }, "K7QX2M9P");
    assert!(t.chars().count() <= MAX_TEXT, "{} characters", t.chars().count());
    assert!(!t.chars().any(is_deceptive), "{t:?}");
    assert!(t.contains("more bytes — full request on the dashboard"));
    // The agent's fake instruction is folded into its one-line field; ours is the last line.
    let last = t.lines().last().unwrap();
    assert!(last.starts_with("Reply \"approve K7QX2M9P\""), "{last}");
    assert!(!t.lines().any(|l| l.starts_with("Reply \"approve 0000AAAA\"")), "{t}");
}

#[test]
fn an_ordinary_card_shows_the_request_and_the_closing_line_its_outcome() {
    let c = card();
    let t = render::card(&c, &Status::Pending { approved_by: vec![] }, "K7QX2M9P");
    for want in [
        "Send email",
        "build-bot",
        "POST https://api.mail.example/v3/send",
        "9f86d081884c",
        "grant K7QX2M9P",
    ] {
        assert!(t.contains(want), "{want} missing from {t}");
    }
    let closed = render::closing(
        &c,
        &Status::Denied {
            by: "carol".into(),
            at_ms: 0,
        },
        "K7QX2M9P",
    );
    assert!(closed.contains("Denied by carol") && !closed.contains('\n'), "{closed}");
}
