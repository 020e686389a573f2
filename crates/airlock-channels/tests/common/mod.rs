//! Shared helpers for the card tests.

use airlock_channels::card::{build, digest};
use airlock_channels::{Card, HeldRequest, RuleLine};

pub fn req(method: &str, host: &str, target: &str, headers: &[(&str, &[u8])], body: &[u8]) -> HeldRequest {
    HeldRequest {
        agent: "agent-1".into(),
        method: method.into(),
        scheme: "https".into(),
        host: host.into(),
        port: 443,
        target: target.into(),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
        body: bytes::Bytes::copy_from_slice(body),
    }
}

pub fn card(held: &HeldRequest) -> Card {
    let rule = RuleLine {
        name: "mail".into(),
        reason: "outgoing email".into(),
        approvers: vec!["ops".into()],
        quorum: 1,
    };
    build(held, "AbCdEfGhIjKl", vec![rule], digest(held), 1_000, 61_000, None)
}

pub fn line<'a>(c: &'a Card, label: &str) -> Option<&'a str> {
    c.summary.iter().find(|(k, _)| k == label).map(|(_, v)| v.as_str())
}

pub const JSON: &[u8] = b"application/json";
