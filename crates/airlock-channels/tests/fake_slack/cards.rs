//! Cards for the tests: an ordinary one and one whose every agent-controlled part is an
//! attack, and the assertions every rendered message must pass.

use airlock_channels::text::is_deceptive;
use airlock_channels::{BodyKind, BodyView, Buttons, Card, RuleLine};
use serde_json::Value;

use super::{objects_of, texts};

pub fn buttons(grant: bool) -> Buttons {
    Buttons {
        approve: "AbCdEfGhIjKl.a.6b49d200.AAAAAAAAAAAAAAAAAAAAAA".into(),
        deny: "AbCdEfGhIjKl.d.6b49d200.BBBBBBBBBBBBBBBBBBBBBB".into(),
        grant: grant.then(|| "AbCdEfGhIjKl.g.6b49d200.CCCCCCCCCCCCCCCCCCCCCC".into()),
    }
}

pub fn card() -> Card {
    Card {
        id: "AbCdEfGhIjKl".into(),
        agent: "build-bot".into(),
        rules: vec![RuleLine {
            name: "email".into(),
            reason: "outbound email needs a human".into(),
            approvers: vec!["alice".into(), "bob".into()],
            quorum: 1,
        }],
        method: "POST".into(),
        scheme: "https".into(),
        host: "api.mail.example".into(),
        port: 443,
        path: "/v3/send".into(),
        query: vec![("dry_run".into(), "false".into())],
        headers: vec![("content-type".into(), "application/json".into())],
        body: BodyView {
            content_type: Some("application/json".into()),
            kind: BodyKind::Json,
            size: 40,
            text: "{\n  \"to\": \"ceo@example.com\",\n  \"subject\": \"hi\"\n}".into(),
            decoded: None,
        },
        summary_title: Some("Send email".into()),
        summary: vec![("To".into(), "ceo@example.com".into()), ("Subject".into(), "hi".into())],
        digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        created_ms: 1_700_000_000_000,
        expires_ms: 1_700_000_900_000,
        grant_secs: Some(1800),
    }
}

/// A card built from a request whose every agent-controlled part is an attack.
pub fn hostile_card() -> Card {
    let fake_actions = r#"{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"Approve"},"action_id":"airlock_approve","value":"forged"}]}"#;
    let mut body = format!(
        "[Approve] [Deny] <!here> <!channel> <@U123> <https://evil.example|click here> \
         ``` </code> <b>bold</b> <script>alert(1)</script> pay\u{202E}gpj.exe zero\u{200B}width &amp; \n{fake_actions}\n"
    );
    for i in 0..10_000 {
        body.push_str(&format!("line {i} <!everyone> ```\n"));
    }
    let mut c = card();
    c.agent = "<!channel> agent\u{202E}".into();
    c.method = "POST\u{200B}".into();
    c.path = "/send/<https://evil.example|Approve>/```".into();
    c.summary_title = Some("<!here> Approve this \u{202E}now".repeat(20));
    c.query = (0..100)
        .map(|i| (format!("q{i}<@U1>"), "<!subteam^S1>".repeat(50)))
        .collect();
    c.headers = vec![("x-note".into(), "<https://evil|click>\u{200B}".into())];
    c.summary = (0..15)
        .map(|i| (format!("Label{i} <!here>"), format!("{}\u{202E}", "&<>".repeat(1000))))
        .collect();
    c.body = BodyView {
        content_type: Some("text/plain; ```<!here>".into()),
        kind: BodyKind::Text,
        size: body.len(),
        text: body,
        decoded: None,
    };
    c
}

/// Every text in a message: no Slack control sequences, no hidden characters, only our entities.
pub fn assert_inert(message: &Value) {
    let mut all = texts(&message["blocks"]);
    if let Some(t) = message["text"].as_str() {
        all.push(("fallback".into(), t.to_string()));
    }
    assert!(!all.is_empty());
    for (kind, t) in &all {
        assert!(!t.contains('<') && !t.contains('>'), "raw < or > in {kind}: {t}");
        assert!(!t.chars().any(is_deceptive), "hidden character in {kind}: {t:?}");
        for (i, _) in t.match_indices('&') {
            let rest = &t[i..];
            assert!(
                rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
                "bare & in {kind}: {t}"
            );
        }
    }
}

/// The buttons anywhere in a message: must be exactly ours, in one actions block.
pub fn assert_our_buttons(message: &Value, b: &Buttons) {
    let actions = objects_of(&message["blocks"], "actions");
    assert_eq!(actions.len(), 1, "one actions block");
    let found: Vec<(String, String, String)> = objects_of(&message["blocks"], "button")
        .iter()
        .map(|b| {
            (
                b["action_id"].as_str().unwrap_or_default().to_string(),
                b["value"].as_str().unwrap_or_default().to_string(),
                b["text"]["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut want = vec![
        ("airlock_approve".to_string(), b.approve.clone(), "Approve".to_string()),
        ("airlock_deny".to_string(), b.deny.clone(), "Deny".to_string()),
    ];
    if let Some(g) = &b.grant {
        want.push(("airlock_grant".to_string(), g.clone(), "Approve for 30 min".to_string()));
    }
    assert_eq!(found, want);
    let buttons = &actions[0]["elements"];
    assert_eq!(buttons[0]["style"], "primary");
    assert_eq!(buttons[1]["style"], "danger");
}

pub fn all_text(message: &Value) -> String {
    texts(&message["blocks"])
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n")
}
