//! What both approval benches build: a held request (mail with a ~1 KB JSON body) and percentiles.

use std::time::Duration;

use airlock_approvals::{HeldRule, HoldRequest};
use airlock_channels::HeldRequest;
use airlock_core::policy::ApprovalSpec;

pub fn request(i: usize) -> HoldRequest {
    let body = format!(
        r#"{{"raw":"VG86IGJvYkBleGFtcGxlLmNvbQ0KU3ViamVjdDogcmVwb3J0IHtpfQ0KDQpIZWxsbw","n":{i},"pad":"{}"}}"#,
        "x".repeat(800)
    );
    HoldRequest {
        held: HeldRequest {
            agent: "mailbot".into(),
            method: "POST".into(),
            scheme: "https".into(),
            host: "gmail.googleapis.com".into(),
            port: 443,
            target: "/gmail/v1/users/me/messages/send".into(),
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("user-agent".into(), b"bench".to_vec()),
            ],
            body: body.into_bytes().into(),
        },
        rules: vec![HeldRule {
            name: "mail".into(),
            reason: "sending mail needs a human".into(),
            spec: ApprovalSpec {
                approvers: vec!["owner".into()],
                quorum: 1,
                timeout_secs: 600,
                grant_secs: None,
                defer_secs: None,
            },
        }],
    }
}

pub fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}
