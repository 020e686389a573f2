//! Test support shared by the channel tests: a sample card, signed buttons, and local fakes
//! that enforce the platforms' documented wire formats.
#![allow(dead_code)]

pub mod telegram;
pub mod tg_html;

use airlock_channels::token::{self, Decision};
use airlock_channels::{BodyKind, BodyView, Buttons, Card, RuleLine};

pub const BUTTON_KEY: &[u8] = b"button key for tests, 32 bytes!!";

pub fn card() -> Card {
    Card {
        id: "AbCdEfGhIjKl".into(),
        agent: "billing-bot".into(),
        rules: vec![RuleLine {
            name: "payments".into(),
            reason: "Money leaves the company".into(),
            approvers: vec!["finance".into()],
            quorum: 2,
        }],
        method: "POST".into(),
        scheme: "https".into(),
        host: "api.stripe.com".into(),
        port: 443,
        path: "/v1/payouts".into(),
        query: vec![("expand".into(), "destination".into())],
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), "[redacted]".into()),
        ],
        body: BodyView {
            content_type: Some("application/json".into()),
            kind: BodyKind::Json,
            size: 17,
            text: "{\n  \"amount\": 5000\n}".into(),
            decoded: None,
        },
        summary_title: None,
        summary: vec![],
        digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        // 2024-05-01 14:00 and 14:15 UTC.
        created_ms: 1_714_572_000_000,
        expires_ms: 1_714_572_900_000,
        grant_secs: Some(900),
    }
}

pub fn buttons(card: &Card) -> Buttons {
    let exp = card.expires_ms / 1000;
    let sign = |d| token::sign(BUTTON_KEY, &card.id, &card.digest, d, exp);
    Buttons {
        approve: sign(Decision::Approve),
        deny: sign(Decision::Deny),
        grant: card.grant_secs.map(|_| sign(Decision::Grant)),
    }
}

/// 2024-05-01 14:03:09 UTC.
pub const AT_1403: u64 = 1_714_572_189_120;
