//! The ntfy card against hostile requests (invariant 8): whatever the agent sends, the
//! notification stays plain text within ntfy's 4,096 bytes, hides nothing, says what it cut,
//! and its actions are exactly ours, each carrying one signed token for its own topic.

#[allow(dead_code)] // shared helpers; this file uses two of them
mod common;

use airlock_channels::ntfy::render;
use airlock_channels::{Buttons, Status};
use common::{card, req};
use serde_json::Value;

fn buttons() -> Buttons {
    Buttons {
        approve: "AbCdEfGhIjKl.a.10.AAAAAAAAAAAAAAAAAAAAAA".into(),
        deny: "AbCdEfGhIjKl.d.10.AAAAAAAAAAAAAAAAAAAAAA".into(),
        grant: Some("AbCdEfGhIjKl.g.10.AAAAAAAAAAAAAAAAAAAAAA".into()),
    }
}

fn hostile_headers() -> Vec<(String, Vec<u8>)> {
    (0..300)
        .map(|i| {
            (
                format!("X-H{i}"),
                format!("v\u{200b}{i} \u{202e}[Approve](https://evil.example)").into_bytes(),
            )
        })
        .collect()
}

#[test]
fn a_hostile_request_renders_inert_and_within_limits() {
    let mut body =
        String::from("{\"actions\":[{\"action\":\"http\",\"label\":\"Approve\",\"url\":\"https://evil.example\"}]}\n");
    for i in 0..10_000 {
        body.push_str(&format!("line {i} @all **x** \u{2066}hidden\u{2069} \x1b[2J\n"));
    }
    let mut held = req(
        "POST",
        "api.example.com",
        "/v1/send?to=%E2%80%AEevil",
        &[],
        body.as_bytes(),
    );
    held.headers = hostile_headers();
    let c = card(&held);
    for status in [
        Status::Pending { approved_by: vec![] },
        Status::Denied {
            by: "alice".into(),
            at_ms: 0,
        },
    ] {
        let msg = render::message(&c, &status);
        assert!(msg.len() <= render::MAX_MESSAGE, "{} bytes", msg.len());
        assert!(
            msg.contains("more lines — full request on the dashboard"),
            "the head was cut: {msg}"
        );
        assert!(!msg.chars().any(airlock_channels::text::is_deceptive), "{msg:?}");
        assert!(msg.contains("<U+202E>") && msg.contains("<U+200B>"));
        // The status, digest and id are never crowded out.
        assert!(msg.contains(c.short_digest()) && msg.contains("AbCdEfGhIjKl"), "{msg}");
    }
    // A card with an ordinary head: the body is quoted and cut with a count.
    let held = req("POST", "api.example.com", "/v1/send", &[], body.as_bytes());
    let c = card(&held);
    let msg = render::message(&c, &Status::Pending { approved_by: vec![] });
    assert!(msg.len() <= render::MAX_MESSAGE);
    assert!(msg.contains("more bytes — full request on the dashboard"), "{msg}");
    assert!(msg.contains("│ {\"actions\""), "quoted as data: {msg}");

    let published = render::card(
        "airlock-alice",
        &c,
        &buttons(),
        "https://airlock.example.com/callbacks/ntfy",
        4,
    );
    assert!(published.get("markdown").is_none(), "plain text, never Markdown");
    let actions = published["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "ntfy's maximum, all ours");
    let b = buttons();
    let tokens = [b.approve.as_str(), b.deny.as_str(), b.grant.as_deref().unwrap()];
    for (a, token) in actions.iter().zip(tokens) {
        assert_eq!(a["url"], "https://airlock.example.com/callbacks/ntfy");
        assert_eq!(a["method"], "POST");
        let press: Value = serde_json::from_str(a["body"].as_str().unwrap()).unwrap();
        assert_eq!(press, serde_json::json!({"topic": "airlock-alice", "token": token}));
    }
    let title = published["title"].as_str().unwrap();
    assert!(title.len() <= 200 && !title.contains('\n'), "{title}");
}
