//! Forged clicks are evidence: every click the hub refuses — a token that does not parse, a
//! flipped bit, a changed decision, another approval's token, a stranger, a click on a decided
//! request — leaves an audit record naming the platform identity and the reason, written before
//! the clicker is answered. Clicks arrive the way the signed webhook channel delivers them.
mod e2e;
mod support;

use e2e::receiver::Receiver;
use e2e::signing::*;
use e2e::*;
use serde_json::{Value, json};
use support::*;

/// The approval's `(id, tokens)` from the card the webhook receiver got for it.
async fn card(rx: &Receiver, id: &str) -> Tokens {
    let req = rx
        .wait_for("approval.requested", |v| {
            v["type"] == "approval.requested" && v["data"]["card"]["id"] == id
        })
        .await;
    let buttons = ["approve", "deny", "grant"]
        .iter()
        .filter_map(|k| req["data"]["buttons"][k].as_str().map(str::to_string))
        .collect();
    tokens_for(id, buttons)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_click_is_audited_with_the_platform_identity_and_the_reason() {
    let key = webhook_key(WEBHOOK_SECRET);
    let rx = Receiver::start(key.clone()).await;
    let up = upstream(true).await;
    let people = "[people.alice]\nroles = [\"owner\"]\nwebhook = \"alice-ops\"\n";
    let mut gw = gateway(&up, people, &webhook_channel(&rx.url), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let _a = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let a = events.next("pending").await;
    let _b = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let b = events.next("pending").await;
    let ta = card(&rx, &a).await;

    let mut flipped = ta.approve.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let clicks = [
        ("alice-ops", "not-a-token".to_string(), "not valid"),
        ("alice-ops", flipped, "signature"),
        ("alice-ops", ta.deny.replacen(".d.", ".a.", 1), "signature"),
        ("alice-ops", ta.approve.replacen(&a, &b, 1), "signature"),
        ("eve-ops", ta.approve.clone(), "not a configured person"),
    ];
    for (user, token, _) in &clicks {
        let r = post_webhook(&gw, &json!({"token": token, "user": user}), Some(&key), None).await;
        let reply: Value = r.json().await.unwrap();
        assert_eq!(reply["ok"], false, "{reply}");
    }
    assert!(!up.contacted());
    // Decided, then clicked again.
    let r = post_webhook(
        &gw,
        &json!({"token": ta.approve, "user": "alice-ops"}),
        Some(&key),
        None,
    )
    .await;
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    let r = post_webhook(&gw, &json!({"token": ta.deny, "user": "alice-ops"}), Some(&key), None).await;
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["ok"], false, "{reply}");

    gw.stop();
    let audit = gw.audit();
    let refused: Vec<&Value> = audit
        .iter()
        .filter(|r| r["kind"] == "vote" && r["decision"] == "refused")
        .collect();
    let shown = serde_json::to_string_pretty(&refused).unwrap();
    for (user, _, why) in clicks.iter().chain([&("alice-ops", String::new(), "already decided")]) {
        let n = refused
            .iter()
            .filter(|r| r["detail"]["user"] == *user && r["reason"].as_str().unwrap().contains(why))
            .count();
        assert!(n >= 1, "no refused-click record by {user} for {why:?}:\n{shown}");
    }
    assert_eq!(
        refused.len(),
        clicks.len() + 1,
        "one record per refused click:\n{shown}"
    );
    // The one on another approval's token names the approval it was aimed at.
    assert!(refused.iter().any(|r| r["detail"]["approval"] == b.as_str()), "{shown}");
    assert!(gw.cli(&["audit", "verify"]).status.success());
}
