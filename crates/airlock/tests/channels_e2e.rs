//! Approval channels end to end: a real `airlock serve` holding real agent requests, its
//! channels talking to the platform fakes of airlock-channels' tests (which enforce the
//! platforms' documented formats), clicks coming back the way each platform sends them.
mod e2e;
mod support;

use e2e::fake_slack::cards::{all_text, assert_inert};
use e2e::fake_slack::{self, DM, Event, TS, objects_of};
use e2e::fake_tg::telegram::FakeTelegram;
use e2e::receiver::Receiver;
use e2e::signing::*;
use e2e::*;
use serde_json::{Value, json};
use support::*;

const ALICE_TG_OWNER: &str = "[people.alice]\nroles = [\"owner\"]\ntelegram = \"1001\"\n\n";
const MALLORY_TG_INTERN: &str = "[people.mallory]\nroles = [\"intern\"]\ntelegram = \"1003\"\n\n";
const BOB_SLACK_OWNER: &str = "[people.bob]\nroles = [\"owner\"]\nslack = \"U0BOB\"\n\n";

fn closed_keyboard() -> Value {
    json!({ "inline_keyboard": [] })
}

/// The agent got through with exactly the held bytes and the real key in its slot.
async fn assert_forwarded(agent: tokio::task::JoinHandle<reqwest::Response>, up: &Upstream, body: &[u8]) {
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body, body);
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_polling_only_the_approver_decides_and_the_card_closes() {
    let tg = FakeTelegram::start().await;
    let up = upstream(true).await;
    let people = format!("{ALICE_TG_OWNER}{MALLORY_TG_INTERN}");
    let gw = gateway(&up, &people, &telegram_channel(&tg), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;

    let card = tg_card(&tg, "1001").await;
    assert_eq!(card["parse_mode"], "HTML");
    let t = tokens_for(&id, tg_buttons(&card["reply_markup"]));
    assert!(t.grant.is_some(), "the rule offers a 15 min grant");
    tg.wait_until("the card accepted", |f| f.message("1001", 1).is_some())
        .await;
    assert!(tg_plain(card["text"].as_str().unwrap()).contains("sending mail needs a human"));

    // Mallory holds no approver role: told so in an alert, nothing changes.
    let answer = tg_click(&tg, 1003, &t.approve).await;
    assert_eq!(answer["show_alert"], true, "{answer}");
    assert!(answer["text"].as_str().unwrap().contains("changed nothing"), "{answer}");
    // A button whose signature does not match is refused even from Alice.
    let forged = t.deny.replacen(".d.", ".a.", 1);
    let answer = tg_click(&tg, 1001, &forged).await;
    assert_eq!(answer["show_alert"], true, "{answer}");
    assert!(answer["text"].as_str().unwrap().contains("refused"), "{answer}");
    assert!(!up.contacted() && !agent.is_finished());

    let answer = tg_click(&tg, 1001, &t.approve).await;
    assert_eq!(answer["show_alert"], false, "{answer}");
    assert_forwarded(agent, &up, MAIL.as_bytes()).await;
    // The card is edited in place: approved, keyboard gone (and the fake accepted the edit).
    tg.wait_until("the card closed", |f| {
        f.message("1001", 1)
            .is_some_and(|(text, kb)| text.contains("Approved") && kb == closed_keyboard())
    })
    .await;
    let edit = tg.calls("editMessageText").pop().unwrap();
    assert_eq!(
        (edit["chat_id"].clone(), edit["message_id"].clone()),
        (json!("1001"), json!(1))
    );
    assert_eq!(edit["reply_markup"], closed_keyboard());
    assert!(tg_plain(edit["text"].as_str().unwrap()).contains("Approved by alice"));

    // A replayed click is refused: the request was decided once and forwarded once.
    let answer = tg_click(&tg, 1001, &t.approve).await;
    assert_eq!(answer["show_alert"], true, "{answer}");
    assert!(answer["text"].as_str().unwrap().contains("already decided"), "{answer}");
    assert_eq!(up.requests().len(), 1);
    // Only Alice ever got a card.
    let sent = tg.calls("sendMessage");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["chat_id"], "1001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_socket_mode_deny_reaches_the_agent_and_closes_the_card() {
    let mut slack = fake_slack::Fake::start().await;
    let up = upstream(true).await;
    let gw = gateway(&up, BOB_SLACK_OWNER, &slack_socket(&slack), MAIL_RULE);
    slack.wait_for(Event::Connected(1)).await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;

    let post = slack_card(&mut slack).await;
    assert_eq!(slack.calls("conversations.open"), vec![json!({"users": "U0BOB"})]);
    assert_eq!(post["channel"], DM);
    let t = slack_tokens(&id, &post);
    assert_inert(&post);

    let click = block_actions("U0BOB", "airlock_deny", &t.deny, &slack.hook_url());
    slack.push(interactive("env-deny-1", click));
    slack
        .wait_until("the envelope's ack", |f| f.acks() == ["env-deny-1"])
        .await;
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    let reason = body["airlock"]["reason"].as_str().unwrap();
    assert!(reason.contains("denied by bob"), "{body}");
    assert!(!up.contacted());

    slack
        .wait_until("chat.update", |f| !f.calls("chat.update").is_empty())
        .await;
    let update = slack.calls("chat.update").pop().unwrap();
    assert_eq!(
        (update["channel"].clone(), update["ts"].clone()),
        (json!(DM), json!(TS))
    );
    assert!(objects_of(&update["blocks"], "actions").is_empty(), "{update}");
    assert!(all_text(&update).contains("Denied by bob"));
    // Bob is answered ephemerally on the interaction's response_url.
    slack.wait_until("the reply", |f| !f.hooks().is_empty()).await;
    let reply = &slack.hooks()[0];
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(reply["text"].as_str().unwrap().contains("denied"), "{reply}");
    assert!(slack.violations().is_empty(), "{:?}", slack.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_http_interactivity_must_be_signed_fresh_and_from_a_person() {
    let mut slack = fake_slack::Fake::start().await;
    let up = upstream(true).await;
    let gw = gateway(&up, BOB_SLACK_OWNER, &slack_http(&slack), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let t = slack_tokens(&id, &slack_card(&mut slack).await);
    let click = |user: &str| slack_form(&block_actions(user, "airlock_approve", &t.approve, &slack.hook_url()));
    let (bob, now) = (click("U0BOB"), now_secs());

    let r = post_slack(&gw, &bob, now, &slack_signature("not-the-signing-secret", now, &bob)).await;
    assert_eq!(r.status(), 401);
    let deny = slack_form(&block_actions("U0BOB", "airlock_deny", &t.deny, &slack.hook_url()));
    let r = post_slack(&gw, &bob, now, &slack_signature(SIGNING, now, &deny)).await;
    assert_eq!(r.status(), 401, "a signature over another body");
    let stale = now - 600;
    let r = post_slack(&gw, &bob, stale, &slack_signature(SIGNING, stale, &bob)).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("replay window"));
    assert!(!up.contacted() && !agent.is_finished());

    // Authentic, but from a Slack user who is not in [people].
    let eve = click("U0EVE");
    let r = post_slack(&gw, &eve, now, &slack_signature(SIGNING, now, &eve)).await;
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["ok"], false);
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("not configured as an approver"),
        "{reply}"
    );
    slack.wait_until("Eve's reply", |f| f.hooks().len() == 1).await;
    assert!(!up.contacted() && !agent.is_finished());
    assert!(slack.calls("chat.update").is_empty());

    let r = post_slack(&gw, &bob, now, &slack_signature(SIGNING, now, &bob)).await;
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_forwarded(agent, &up, MAIL.as_bytes()).await;
    slack
        .wait_until("the card closed", |f| {
            f.calls("chat.update")
                .iter()
                .any(|u| objects_of(&u["blocks"], "actions").is_empty() && all_text(u).contains("Approved by bob"))
        })
        .await;
    assert!(slack.violations().is_empty(), "{:?}", slack.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_delivers_the_card_and_takes_signed_clicks() {
    let key = webhook_key(WEBHOOK_SECRET);
    let rx = Receiver::start(key.clone()).await;
    let up = upstream(true).await;
    let people = "[people.alice]\nroles = [\"owner\"]\nwebhook = \"alice-ops\"\n";
    let gw = gateway(&up, people, &webhook_channel(&rx.url), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;

    let req = rx
        .wait_for("approval.requested", |v| v["type"] == "approval.requested")
        .await;
    let data = &req["data"];
    assert_eq!(data["to"], "alice-ops");
    assert_eq!(data["card"]["id"], id.as_str());
    assert_eq!(data["card"]["agent"], "mailbot");
    let buttons = ["approve", "deny", "grant"]
        .iter()
        .filter_map(|k| data["buttons"][k].as_str().map(str::to_string))
        .collect();
    let t = tokens_for(&id, buttons);

    let click = json!({"token": t.approve, "user": "alice-ops"});
    let unsigned = post_webhook(&gw, &click, None, None).await;
    assert_eq!(unsigned.status(), 401);
    let other_key = post_webhook(&gw, &click, Some(b"another key, also 32 bytes long!"), None).await;
    assert_eq!(other_key.status(), 401);
    let signed_deny = json!({"token": t.deny, "user": "alice-ops"});
    let tampered = post_webhook(&gw, &signed_deny, Some(&key), Some(&click)).await;
    assert_eq!(tampered.status(), 401);
    assert!(!up.contacted() && !agent.is_finished());

    let r = post_webhook(&gw, &click, Some(&key), None).await;
    assert_eq!(r.status(), 200);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_forwarded(agent, &up, MAIL.as_bytes()).await;
    let updated = rx
        .wait_for("approval.updated (approved)", |v| {
            v["type"] == "approval.updated" && v["data"]["status"]["state"] == "approved"
        })
        .await;
    assert_eq!(updated["data"]["id"], id.as_str());
    assert_eq!(updated["data"]["to"], "alice-ops");
    assert_eq!(updated["data"]["status"]["by"], json!(["alice"]));
    assert!(rx.refused().is_empty(), "{:?}", rx.refused());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_gathers_across_telegram_and_slack() {
    let tg = FakeTelegram::start().await;
    let mut slack = fake_slack::Fake::start().await;
    let up = upstream(true).await;
    let people = "[people.alice]\nroles = [\"senior\"]\ntelegram = \"1001\"\n\n\
                  [people.bob]\nroles = [\"senior\"]\nslack = \"U0BOB\"\n";
    let channels = format!("{}{}", telegram_channel(&tg), slack_socket(&slack));
    let gw = gateway(&up, people, &channels, DEPLOY_RULE);
    slack.wait_for(Event::Connected(1)).await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, "/deploy", "text/plain", b"ship v42".to_vec());
    let id = events.next("pending").await;

    let card = tg_card(&tg, "1001").await;
    let on_tg = tokens_for(&id, tg_buttons(&card["reply_markup"]));
    let on_slack = slack_tokens(&id, &slack_card(&mut slack).await);
    assert_eq!(on_tg, on_slack, "one approval, the same signed buttons everywhere");

    let answer = tg_click(&tg, 1001, &on_tg.approve).await;
    assert_eq!(answer["show_alert"], false, "{answer}");
    assert!(answer["text"].as_str().unwrap().contains("1 so far"), "{answer}");
    // Both cards say so in place, and keep their buttons for the second approver.
    tg.wait_until("1 of 2 on Telegram", |f| {
        f.message("1001", 1)
            .is_some_and(|(text, kb)| tg_plain(&text).contains("1 of 2") && kb == card["reply_markup"])
    })
    .await;
    slack
        .wait_until("1 of 2 on Slack", |f| {
            f.calls("chat.update").iter().any(|u| all_text(u).contains("1 of 2"))
        })
        .await;
    let partial = slack.calls("chat.update").pop().unwrap();
    assert_eq!(slack_tokens(&id, &partial), on_slack);
    assert!(!up.contacted() && !agent.is_finished());

    let click = block_actions("U0BOB", "airlock_approve", &on_slack.approve, &slack.hook_url());
    slack.push(interactive("env-quorum-2", click));
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests().len(), 1, "forwarded once");
    assert_eq!(up.last().body, b"ship v42");

    tg.wait_until("closed on Telegram", |f| {
        f.message("1001", 1).is_some_and(|(text, kb)| {
            let text = tg_plain(&text);
            text.contains("Approved by") && text.contains("alice") && text.contains("bob") && kb == closed_keyboard()
        })
    })
    .await;
    slack
        .wait_until("closed on Slack", |f| {
            f.calls("chat.update").iter().any(|u| {
                objects_of(&u["blocks"], "actions").is_empty() && all_text(u).contains("Approved by alice, bob")
            })
        })
        .await;
    // Updated in place: one message per platform, never a second card.
    assert_eq!(tg.calls("sendMessage").len(), 1);
    assert_eq!(slack.calls("chat.postMessage").len(), 1);
    assert!(slack.calls("chat.update").iter().all(|u| u["ts"] == TS));
    assert!(slack.violations().is_empty(), "{:?}", slack.violations());
}

/// A body built to forge buttons, break out of markup, ping everyone, hide text and drown
/// the card.
fn hostile_body() -> String {
    let fake_ui = r#"{"blocks":[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"Approve"},"action_id":"airlock_approve","value":"forged"}]}],"reply_markup":{"inline_keyboard":[[{"text":"✅ Approve","callback_data":"forged"}]]}}"#;
    let mut body = format!(
        "[✅ Approve] [❌ Deny] <!here> <!channel> <@U0BOB> </code></pre><b>x</b> pay\u{202E}gpj.exe \
         zero\u{200B}width &amp; ```\n{fake_ui}\n"
    );
    for i in 0..5000 {
        body.push_str(&format!("line {i} <!here> </code></pre><b>x</b> ```\n"));
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_body_stays_inert_on_telegram_and_slack() {
    let tg = FakeTelegram::start().await;
    let mut slack = fake_slack::Fake::start().await;
    let up = upstream(true).await;
    let people = "[people.alice]\nroles = [\"owner\"]\ntelegram = \"1001\"\nslack = \"U0ALICE\"\n";
    let channels = format!("{}{}", telegram_channel(&tg), slack_http(&slack));
    let gw = gateway(&up, people, &channels, MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let body = hostile_body();
    let agent = send(&gw, up.port, MAIL_PATH, "text/plain", body.clone().into_bytes());
    let id = events.next("pending").await;

    // Telegram: the fake's strict HTML parser and limits accepted it; our keyboard only.
    tg_card(&tg, "1001").await;
    tg.wait_until("the card accepted", |f| f.message("1001", 1).is_some())
        .await;
    let (html, kb) = tg.message("1001", 1).unwrap();
    let t = tokens_for(&id, tg_buttons(&kb));
    let labels: Vec<&str> = kb["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|b| b["text"].as_str().unwrap()))
        .collect();
    assert_eq!(labels, ["✅ Approve", "❌ Deny", "✅ Approve for 15 min"]);
    let parsed = e2e::fake_tg::tg_html::parse(&html).unwrap();
    assert!(
        parsed.tags.iter().all(|t| ["b", "code", "pre"].contains(&t.as_str())),
        "{:?}",
        parsed.tags
    );
    let text = parsed.text;
    assert!(text.contains("more bytes"), "{text}");
    assert!(text.contains("</code></pre><b>x</b>"), "shown as text: {text}");
    assert!(text.contains("<U+202E>") && text.contains("<U+200B>"), "{text}");
    assert!(!text.contains('\u{202E}') && !text.contains('\u{200B}'));

    // Slack: the fake's Block Kit validator accepted it; one actions block, ours.
    let post = slack_card(&mut slack).await;
    assert!(slack.violations().is_empty(), "{:?}", slack.violations());
    assert_eq!(slack_tokens(&id, &post), t);
    assert_inert(&post);
    assert!(all_text(&post).contains("more bytes"));

    // Closing re-renders the same body: still accepted on both.
    let answer = tg_click(&tg, 1001, &t.deny).await;
    assert_eq!(answer["show_alert"], false, "{answer}");
    assert_eq!(agent.await.unwrap().status(), 403);
    tg.wait_until("closed on Telegram", |f| {
        f.message("1001", 1)
            .is_some_and(|(text, kb)| text.contains("Denied") && kb == closed_keyboard())
    })
    .await;
    slack
        .wait_until("closed on Slack", |f| !f.calls("chat.update").is_empty())
        .await;
    let update = slack.calls("chat.update").pop().unwrap();
    assert!(objects_of(&update["blocks"], "actions").is_empty());
    assert_inert(&update);
    assert!(slack.violations().is_empty(), "{:?}", slack.violations());
    assert!(!up.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_on_any_surface() {
    let tg = FakeTelegram::start().await;
    let mut slack = fake_slack::Fake::start().await;
    let key = webhook_key(WEBHOOK_SECRET);
    let rx = Receiver::start(key.clone()).await;
    let up = upstream(true).await;
    let people =
        "[people.alice]\nroles = [\"owner\"]\ntelegram = \"1001\"\nslack = \"U0ALICE\"\nwebhook = \"alice-ops\"\n";
    let channels = format!(
        "{}{}{}",
        telegram_channel(&tg),
        slack_socket(&slack),
        webhook_channel(&rx.url)
    );
    let mut gw = gateway(&up, people, &channels, MAIL_RULE);
    slack.wait_for(Event::Connected(1)).await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let t = tokens_for(&id, tg_buttons(&tg_card(&tg, "1001").await["reply_markup"]));
    slack_card(&mut slack).await;
    rx.wait_for("approval.requested", |v| v["type"] == "approval.requested")
        .await;
    let show = gw.control_cli(&["approvals", "show", &id]);
    assert!(show.status.success(), "{}", text(&show));

    let click = json!({"token": t.approve, "user": "alice-ops"});
    assert_eq!(post_webhook(&gw, &click, Some(&key), None).await.status(), 200);
    // The secret was really used: it reached the upstream, and only the upstream.
    assert_forwarded(agent, &up, MAIL.as_bytes()).await;
    tg.wait_until("closed on Telegram", |f| {
        f.message("1001", 1).is_some_and(|(_, kb)| kb == closed_keyboard())
    })
    .await;
    slack
        .wait_until("closed on Slack", |f| !f.calls("chat.update").is_empty())
        .await;
    rx.wait_for("approval.updated", |v| v["type"] == "approval.updated")
        .await;

    let mut tg_seen = String::new();
    for m in ["sendMessage", "editMessageText", "answerCallbackQuery", "getUpdates"] {
        tg_seen.push_str(&serde_json::to_string(&tg.calls(m)).unwrap());
    }
    assert_no_credential("what Telegram received", &tg_seen);
    let slack_seen = [
        "conversations.open",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
    ]
    .map(|m| serde_json::to_string(&slack.calls(m)).unwrap())
    .join("\n");
    assert_no_credential("what Slack received", &slack_seen);
    assert_no_credential(
        "Slack response_url posts",
        &serde_json::to_string(&slack.hooks()).unwrap(),
    );
    assert_no_credential("what the webhook receiver received", &rx.raw().join("\n"));
    assert_no_credential("approvals show", &text(&show));

    gw.stop();
    let logs = gw.logs();
    assert!(
        logs.contains("proxy on") && logs.contains("slack socket: connected"),
        "not the gateway's log: {logs}"
    );
    assert_no_credential("the gateway's log", &logs);
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    assert!(audit.contains("alice voted via webhook"), "{audit}");
    assert_no_credential("the audit log", &audit);
}

/// `airlock status` names each channel's last delivery and last error (issue 16): a webhook
/// that refuses connections shows its error, and the channel's secret appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_channels_last_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/cards", closed.local_addr().unwrap().port());
    drop(closed);
    let up = upstream(true).await;
    let people = "[people.alice]\nroles = [\"owner\"]\nwebhook = \"alice-ops\"\n";
    let gw = gateway(&up, people, &webhook_channel(&url), MAIL_RULE);
    let o = gw.control_cli(&["status"]);
    assert!(text(&o).contains("webhook: no card yet"), "{}", text(&o));
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    assert_eq!(
        agent.await.unwrap().status(),
        403,
        "no card could be delivered: refused"
    );

    let o = gw.control_cli(&["status", "--json"]);
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    let health = &st["approvals"]["channel_health"][0];
    assert_eq!(health["name"], "webhook", "{st}");
    assert!(
        health["last_error"].as_str().is_some_and(|e| e.contains("webhook")),
        "{st}"
    );
    assert!(
        health["last_error_ms"].as_u64().is_some() && health["last_ok_ms"].is_null(),
        "{st}"
    );
    let o = gw.control_cli(&["status"]);
    let shown = text(&o);
    assert!(shown.contains("webhook: no card yet; last error"), "{shown}");
    assert!(!shown.contains(WEBHOOK_SECRET) && !st.to_string().contains(WEBHOOK_SECRET));
}
