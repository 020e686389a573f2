//! Slack channel against a local fake Slack that enforces the documented wire format.

mod fake_slack;

use std::sync::Arc;
use std::time::Duration;

use airlock_channels::slack::{self, Slack, SlackConfig, render};
use airlock_channels::{CallbackError, Channel, ChannelError, Click, MessageRef, Reply, Status};
use airlock_vault::SecretBytes;
use fake_slack::cards::{all_text, assert_inert, assert_our_buttons, buttons, card, hostile_card};
use fake_slack::{APP, BOT, DM, Event, Fake, TS, objects_of, texts};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};

const SECRET: &str = "test-signing-secret-5d1f";
const NOW: u64 = 1_800_000_000;

fn secret(s: &str) -> SecretBytes {
    SecretBytes::new(s.as_bytes().to_vec())
}

fn slack(fake: &Fake, bot: &str) -> Slack {
    Slack::new(SlackConfig {
        api_base: fake.api_base(),
        bot_token: secret(bot),
        app_token: Some(secret(APP)),
        signing_secret: Some(secret(SECRET)),
    })
}

#[tokio::test]
async fn send_opens_a_dm_posts_the_card_and_update_closes_it() {
    let fake = Fake::start().await;
    let s = slack(&fake, BOT);
    assert_eq!(s.name(), "slack");
    let (c, b) = (card(), buttons(true));

    let msg = s.send(&c, &b, "U0ALICE").await.unwrap();
    assert_eq!(msg, MessageRef(format!("{DM}/{TS}")));
    assert_eq!(fake.calls("conversations.open"), vec![json!({"users": "U0ALICE"})]);
    let posts = fake.calls("chat.postMessage");
    assert_eq!(posts.len(), 1);
    let post = &posts[0];
    assert_eq!(post["channel"], DM);
    assert_eq!(post["unfurl_links"], false);
    assert!(post["text"].as_str().unwrap().contains("Send email"));
    assert_our_buttons(post, &b);
    assert_inert(post);
    let shown = all_text(post);
    for want in [
        "Send email",
        "POST https://api.mail.example/v3/send",
        "build-bot",
        "9f86d081884c",
        "ceo@example.com",
    ] {
        assert!(shown.contains(want), "{want} missing from {shown}");
    }
    assert!(shown.contains("2023-11-14 22:28 UTC"), "expiry shown: {shown}");

    let approved = Status::Approved {
        by: vec!["alice".into(), "bob".into()],
        at_ms: 1_700_000_580_000,
        grant_secs: None,
    };
    s.update(&c, &approved, Some(&b), &msg).await.unwrap();
    let updates = fake.calls("chat.update");
    assert_eq!(updates.len(), 1);
    let up = &updates[0];
    assert_eq!((up["channel"].as_str(), up["ts"].as_str()), (Some(DM), Some(TS)));
    assert!(
        objects_of(&up["blocks"], "actions").is_empty(),
        "closed card keeps no buttons"
    );
    assert!(objects_of(&up["blocks"], "button").is_empty());
    assert!(
        all_text(up).contains("Approved by alice, bob · 22:23 UTC"),
        "{}",
        all_text(up)
    );
    assert!(up["text"].as_str().unwrap().contains("Approved by alice, bob"));
    assert_inert(up);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn an_open_card_keeps_its_buttons_on_a_partial_approval() {
    let fake = Fake::start().await;
    let s = slack(&fake, BOT);
    let mut c = card();
    c.rules[0].quorum = 2;
    let b = buttons(false);
    let msg = s.send(&c, &b, "U0ALICE").await.unwrap();
    let partial = Status::Pending {
        approved_by: vec!["alice".into()],
    };
    s.update(&c, &partial, Some(&b), &msg).await.unwrap();
    let up = &fake.calls("chat.update")[0];
    assert_our_buttons(up, &b);
    assert!(all_text(up).contains("Approved so far by alice — 1 of 2 approvals"));
    s.update(
        &c,
        &Status::Denied {
            by: "carol".into(),
            at_ms: 0,
        },
        Some(&b),
        &msg,
    )
    .await
    .unwrap();
    let up = &fake.calls("chat.update")[1];
    assert!(objects_of(&up["blocks"], "button").is_empty());
    assert!(all_text(up).contains("Denied by carol"));
    // An open status without its buttons (unknown after a restart) leaves the card as sent
    // rather than taking the buttons off.
    s.update(&c, &partial, None, &msg).await.unwrap();
    assert_eq!(fake.calls("chat.update").len(), 2);
    assert!(
        s.update(&c, &partial, Some(&b), &MessageRef("no-slash".into()))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn hostile_request_renders_inert_with_only_our_buttons_and_within_limits() {
    let fake = Fake::start().await;
    let s = slack(&fake, BOT);
    let (c, b) = (hostile_card(), buttons(true));
    s.send(&c, &b, "U0ALICE").await.unwrap();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let post = &fake.calls("chat.postMessage")[0];
    assert_our_buttons(post, &b);
    assert_inert(post);

    let shown = all_text(post);
    // Neutralised, still visible to the approver.
    assert!(shown.contains("&lt;!here&gt;") && shown.contains("&lt;@U123&gt;"));
    assert!(shown.contains("&lt;https://evil.example|click here&gt;"));
    assert!(shown.contains("&lt;U+202E&gt;") && shown.contains("&lt;U+200B&gt;"));
    assert!(shown.contains("more bytes — full request on the dashboard"));
    assert!(shown.contains("more parameters — full request on the dashboard"));
    assert!(shown.contains("more lines — full request on the dashboard"));
    // The body: one code block, our own fences only, cut with a count.
    let mrkdwn: Vec<String> = texts(&post["blocks"])
        .into_iter()
        .filter(|(k, _)| k == "mrkdwn")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(mrkdwn.len(), 1, "only the body is mrkdwn");
    let body = &mrkdwn[0];
    assert!(body.starts_with("```\n"));
    assert_eq!(body.matches("```").count(), 2, "{body}");
    assert!(body.contains(render::FENCE_STANDIN));
    assert!(body.lines().count() <= 45);
    assert!(body.ends_with("more bytes — full request on the dashboard"));
    assert!(shown.contains(&format!("``` shown as {}", render::FENCE_STANDIN)));
    // Limits, checked here too (the fake checked them on the wire).
    let header = &objects_of(&post["blocks"], "header")[0];
    assert!(header["text"]["text"].as_str().unwrap().chars().count() <= 150);
    for section in objects_of(&post["blocks"], "section") {
        assert!(section["fields"].as_array().is_none_or(|f| f.len() <= 10));
    }
    assert!(post["blocks"].as_array().unwrap().len() <= 50);

    // Closed status of the same card: still inert, no buttons.
    let v = slack::blocks(&c, &Status::Withdrawn { at_ms: 0 }, Some(&b));
    assert!(objects_of(&v, "button").is_empty());
    assert!(all_text(&json!({"blocks": v})).contains("Withdrawn — agent disconnected"));
}

#[test]
fn every_closed_status_drops_the_buttons() {
    let (c, b) = (card(), buttons(true));
    let open = slack::blocks(&c, &Status::Pending { approved_by: vec![] }, Some(&b));
    assert_eq!(objects_of(&open, "button").len(), 3);
    assert!(
        objects_of(
            &slack::blocks(&c, &Status::Pending { approved_by: vec![] }, None),
            "button"
        )
        .is_empty()
    );
    for (status, line) in [
        (
            Status::Approved {
                by: vec!["alice".into()],
                at_ms: 0,
                grant_secs: Some(1800),
            },
            "Approved by alice · 00:00 UTC · matching requests allowed for 30 min",
        ),
        (
            Status::Denied {
                by: "carol".into(),
                at_ms: 0,
            },
            "Denied by carol",
        ),
        (Status::Expired { at_ms: 0 }, "Expired"),
        (Status::Abandoned { at_ms: 0 }, "Abandoned — gateway stopped"),
        (Status::Withdrawn { at_ms: 0 }, "Withdrawn — agent disconnected"),
    ] {
        let v = slack::blocks(&c, &status, Some(&b));
        assert!(objects_of(&v, "actions").is_empty(), "{status:?}");
        let shown = all_text(&json!({"blocks": v}));
        assert!(shown.contains(line), "{status:?}: {shown}");
        assert!(fake_slack::validate_message(&json!({"blocks": v})).is_empty());
    }
}

// Slack's worked example in "Verifying requests from Slack".
const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const DOC_TS: &str = "1531420618";
const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

#[test]
fn signature_matches_slacks_documented_example() {
    let secret = DOC_SECRET.as_bytes();
    let at = 1_531_420_618;
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, at),
        Ok(())
    );
    // Within the window either side; a replay inside it still verifies: single use is the
    // hub's job (one vote per person, tokens bound to the request), not the signature's.
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, at + 300),
        Ok(())
    );
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, at - 300),
        Ok(())
    );
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, DOC_BODY.as_bytes(), DOC_SIG, at + 60),
        Ok(())
    );
}

#[test]
fn signature_rejects_tampering_staleness_and_junk() {
    let secret = DOC_SECRET.as_bytes();
    let at = 1_531_420_618;
    let body = DOC_BODY.as_bytes();
    let bad = DOC_SIG.replace("a2114", "a2115");
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, body, &bad, at),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        slack::verify_signature(b"another secret", DOC_TS, body, DOC_SIG, at),
        Err(CallbackError::BadSignature)
    );
    let mut tampered = body.to_vec();
    tampered[0] = b'T';
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, &tampered, DOC_SIG, at),
        Err(CallbackError::BadSignature)
    );
    // The timestamp is signed: moving it breaks the signature even inside the window.
    assert_eq!(
        slack::verify_signature(secret, "1531420619", body, DOC_SIG, at),
        Err(CallbackError::BadSignature)
    );
    for sig in [
        "",
        "v0=",
        "v1=a2114d57",
        "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "v0=zz",
    ] {
        assert_eq!(
            slack::verify_signature(secret, DOC_TS, body, sig, at),
            Err(CallbackError::BadSignature),
            "{sig}"
        );
    }
    // Six minutes either way: outside the replay window.
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, body, DOC_SIG, at + 360),
        Err(CallbackError::Stale)
    );
    assert_eq!(
        slack::verify_signature(secret, DOC_TS, body, DOC_SIG, at - 360),
        Err(CallbackError::Stale)
    );
    assert_eq!(
        slack::verify_signature(secret, "soon", body, DOC_SIG, at),
        Err(CallbackError::MissingHeader("X-Slack-Request-Timestamp"))
    );
}

/// Independent of the crate's verifier: the scheme as documented.
fn sign(ts: &str, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(m.finalize().into_bytes()))
}

fn form(payload: &Value) -> String {
    let enc =
        percent_encoding::utf8_percent_encode(&payload.to_string(), percent_encoding::NON_ALPHANUMERIC).to_string();
    format!("payload={enc}")
}

fn signed_headers(body: &str) -> http::HeaderMap {
    let ts = NOW.to_string();
    let mut h = http::HeaderMap::new();
    h.insert("x-slack-request-timestamp", ts.parse().unwrap());
    h.insert("x-slack-signature", sign(&ts, body).parse().unwrap());
    h.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    h
}

/// A block_actions payload shaped like Slack's, for a click on `action_id` carrying `value`.
fn block_actions(action_id: &str, value: &str, response_url: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice", "name": "alice", "team_id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": TS, "channel_id": DM, "is_ephemeral": false},
        "trigger_id": "123.456.abc",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "channel": {"id": DM, "name": "directmessage"},
        "message": {"type": "message", "ts": TS, "text": "Send email"},
        "response_url": response_url,
        "actions": [{
            "action_id": action_id, "block_id": "x1", "text": {"type": "plain_text", "text": "Approve"},
            "value": value, "style": "primary", "type": "button", "action_ts": "1700000005.000001"
        }]
    })
}

#[tokio::test]
async fn callback_turns_a_signed_block_action_into_a_click() {
    let fake = Fake::start().await;
    let s = slack(&fake, BOT);
    let b = buttons(false);
    let url = "https://hooks.slack.com/actions/T0FAKE/1234/abc";
    let body = form(&block_actions("airlock_approve", &b.approve, url));
    let click = s
        .callback(&signed_headers(&body), body.as_bytes(), NOW + 10)
        .unwrap()
        .unwrap();
    assert_eq!(
        click,
        Click {
            done: Default::default(),
            channel: "slack",
            user: "U0ALICE".into(),
            token: b.approve.clone(),
            ack: json!({"response_url": url, "channel": DM, "message_ts": TS}),
        }
    );
    // '+' for spaces, as browsers and Slack form-encode.
    let spaced = block_actions("airlock_deny", &b.deny, url)
        .to_string()
        .replace(' ', "+");
    let body = format!("payload={}", spaced.replace('&', "%26").replace('=', "%3D"));
    let click = s
        .callback(&signed_headers(&body), body.as_bytes(), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(click.token, b.deny);
}

#[tokio::test]
async fn callback_ignores_other_interactions_and_rejects_garbage() {
    let fake = Fake::start().await;
    let s = slack(&fake, BOT);
    let cases = [
        json!({"type": "view_submission", "user": {"id": "U0ALICE"}}),
        json!({"type": "shortcut", "callback_id": "x"}),
        block_actions("someone_elses_button", "v", "https://hooks.slack.com/x"),
    ];
    for p in cases {
        let body = form(&p);
        assert_eq!(
            s.callback(&signed_headers(&body), body.as_bytes(), NOW),
            Ok(None),
            "{p}"
        );
    }
    for body in ["garbage", "payload=%7Bnot json", "payload=%7B%7D", "payload=%FF%FE"] {
        let r = s.callback(&signed_headers(body), body.as_bytes(), NOW);
        assert!(matches!(r, Err(CallbackError::Malformed(_))), "{body}: {r:?}");
    }
    let mut p = block_actions("airlock_approve", "tok", "https://hooks.slack.com/x");
    p["user"] = json!({});
    let body = form(&p);
    assert!(matches!(
        s.callback(&signed_headers(&body), body.as_bytes(), NOW),
        Err(CallbackError::Malformed(_))
    ));

    // Authentication comes first.
    let body = form(&block_actions("airlock_approve", "tok", "https://hooks.slack.com/x"));
    let mut h = signed_headers(&body);
    h.remove("x-slack-signature");
    assert_eq!(
        s.callback(&h, body.as_bytes(), NOW),
        Err(CallbackError::MissingHeader("X-Slack-Signature"))
    );
    let mut h = signed_headers(&body);
    h.remove("x-slack-request-timestamp");
    assert_eq!(
        s.callback(&h, body.as_bytes(), NOW),
        Err(CallbackError::MissingHeader("X-Slack-Request-Timestamp"))
    );
    let forged = body.replace("tok", "tak");
    assert_eq!(
        s.callback(&signed_headers(&body), forged.as_bytes(), NOW),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        s.callback(&signed_headers(&body), body.as_bytes(), NOW + 301),
        Err(CallbackError::Stale)
    );

    // Without a signing secret there is no HTTP interactivity endpoint.
    let no_secret = Slack::new(SlackConfig {
        api_base: fake.api_base(),
        bot_token: secret(BOT),
        app_token: Some(secret(APP)),
        signing_secret: None,
    });
    assert_eq!(
        no_secret.callback(&signed_headers(&body), body.as_bytes(), NOW),
        Err(CallbackError::NotSupported)
    );
}

fn interactive(envelope_id: &str, payload: Value) -> Value {
    json!({"envelope_id": envelope_id, "type": "interactive", "payload": payload, "accepts_response_payload": false})
}

async fn next_click(rx: &mut mpsc::Receiver<Click>) -> Option<Click> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a click (or the end of the reader) in time")
}

#[tokio::test]
async fn socket_mode_acks_first_delivers_clicks_reconnects_and_stops() {
    let mut fake = Fake::start().await;
    let s = Arc::new(slack(&fake, BOT));
    let b = buttons(true);
    let (tx, mut rx) = mpsc::channel(1);
    let (stop, shutdown) = watch::channel(false);
    // The hub is busy: the queue is full, so processing the next click has to wait.
    let busy = Click {
        done: Default::default(),
        channel: "slack",
        user: "U0BUSY".into(),
        token: "t".into(),
        ack: Value::Null,
    };
    tx.send(busy.clone()).await.unwrap();
    s.clone().start(tx, shutdown);

    fake.wait_for(Event::Connected(1)).await;
    fake.push(interactive(
        "env-1",
        block_actions("airlock_approve", &b.approve, &fake.hook_url()),
    ));
    // Acknowledged although the click cannot be handed over yet.
    fake.wait_for(Event::Ack("env-1".into())).await;
    assert_eq!(next_click(&mut rx).await, Some(busy));
    let click = next_click(&mut rx).await.unwrap();
    assert_eq!(
        (click.user.as_str(), click.token.as_str()),
        ("U0ALICE", b.approve.as_str())
    );
    assert_eq!(click.ack["response_url"], fake.hook_url());
    assert_eq!(click.ack["channel"], DM);

    // Not clicks, but acknowledged all the same.
    fake.push(json!({"envelope_id": "env-ev", "type": "events_api", "payload": {"type": "event_callback"}, "accepts_response_payload": false}));
    fake.wait_for(Event::Ack("env-ev".into())).await;
    fake.push(interactive(
        "env-view",
        json!({"type": "view_submission", "user": {"id": "U0ALICE"}}),
    ));
    fake.wait_for(Event::Ack("env-view".into())).await;

    // Slack asks for a refresh: a fresh apps.connections.open and a new socket.
    fake.push(json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake"}}));
    fake.wait_for(Event::Closed(1)).await;
    fake.wait_for(Event::Connected(2)).await;
    assert_eq!(fake.calls("apps.connections.open").len(), 2);
    fake.push(interactive(
        "env-2",
        block_actions("airlock_deny", &b.deny, &fake.hook_url()),
    ));
    fake.wait_for(Event::Ack("env-2".into())).await;
    assert_eq!(next_click(&mut rx).await.unwrap().token, b.deny);

    // The network drops the socket: reconnect again.
    fake.kill_socket();
    fake.wait_for(Event::Connected(3)).await;
    assert_eq!(fake.calls("apps.connections.open").len(), 3);
    fake.push(interactive(
        "env-3",
        block_actions("airlock_grant", b.grant.as_deref().unwrap(), &fake.hook_url()),
    ));
    assert_eq!(next_click(&mut rx).await.unwrap().token, b.grant.clone().unwrap());

    // Shutdown closes the socket and ends the reader (which drops its click sender).
    stop.send(true).unwrap();
    fake.wait_for(Event::Closed(3)).await;
    assert_eq!(next_click(&mut rx).await, None);
    assert_eq!(fake.calls("apps.connections.open").len(), 3);
    assert_eq!(fake.acks(), ["env-1", "env-ev", "env-view", "env-2", "env-3"]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn socket_mode_retries_a_refused_app_token_with_backoff() {
    let mut fake = Fake::start().await;
    let s = Arc::new(Slack::new(SlackConfig {
        api_base: fake.api_base(),
        bot_token: secret(BOT),
        app_token: Some(secret(BOT)), // the wrong kind of token: invalid_auth
        signing_secret: None,
    }));
    let (tx, mut rx) = mpsc::channel(1);
    let (stop, shutdown) = watch::channel(false);
    s.start(tx, shutdown);
    fake.wait_for(Event::Api("apps.connections.open".into())).await;
    fake.wait_for(Event::Api("apps.connections.open".into())).await;
    stop.send(true).unwrap();
    assert_eq!(next_click(&mut rx).await, None);
    assert!(fake.calls("apps.connections.open").is_empty(), "never authenticated");
}

#[tokio::test]
async fn acknowledge_answers_ephemerally_by_response_url_or_post_ephemeral() {
    let fake = Fake::start().await;
    let s = slack(&fake, BOT);
    let reply = Reply {
        ok: true,
        text: "Counted: 1 of 2 <!here>".into(),
    };
    let click = |url: Option<String>| Click {
        done: Default::default(),
        channel: "slack",
        user: "U0ALICE".into(),
        token: "t".into(),
        ack: json!({"response_url": url, "channel": DM, "message_ts": TS}),
    };

    s.acknowledge(&click(Some(fake.hook_url())), &reply).await.unwrap();
    assert_eq!(
        fake.hooks(),
        vec![json!({"response_type": "ephemeral", "replace_original": false, "text": "Counted: 1 of 2 &lt;!here&gt;"})]
    );
    assert!(fake.calls("chat.postEphemeral").is_empty());

    // No response_url, or one that is not Slack's: chat.postEphemeral to the clicker.
    s.acknowledge(&click(None), &reply).await.unwrap();
    s.acknowledge(&click(Some("https://evil.example/hook".into())), &reply)
        .await
        .unwrap();
    let eph = fake.calls("chat.postEphemeral");
    assert_eq!(eph.len(), 2);
    assert_eq!(
        eph[0],
        json!({"channel": DM, "user": "U0ALICE", "text": "Counted: 1 of 2 &lt;!here&gt;"})
    );
    assert_eq!(fake.hooks().len(), 1);

    // A dead response_url falls back too.
    let dead = format!("http://{}/nowhere", fake.addr);
    s.acknowledge(&click(Some(dead)), &reply).await.unwrap();
    assert_eq!(fake.calls("chat.postEphemeral").len(), 3);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn platform_errors_name_slacks_error_and_never_the_token() {
    let fake = Fake::start().await;
    let wrong = "xoxb-9999-WRONG-token-DISTINCTIVE";
    let s = slack(&fake, wrong);
    let err = s.send(&card(), &buttons(false), "U0ALICE").await.unwrap_err();
    assert!(
        matches!(err, ChannelError::Platform { channel: "slack", .. }),
        "{err:?}"
    );
    for shown in [err.to_string(), format!("{err:?}"), format!("{s:?}")] {
        assert!(shown.contains("invalid_auth") || shown.starts_with("Slack"), "{shown}");
        assert!(
            !shown.contains(wrong) && !shown.contains("DISTINCTIVE"),
            "token leaked: {shown}"
        );
    }
    assert!(err.to_string().contains("conversations.open: invalid_auth"));
    let cfg = SlackConfig {
        api_base: fake.api_base(),
        bot_token: secret(wrong),
        app_token: Some(secret(APP)),
        signing_secret: Some(secret(SECRET)),
    };
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("DISTINCTIVE") && !shown.contains(APP) && !shown.contains(SECRET),
        "{shown}"
    );

    let s = slack(&fake, BOT);
    fake.rate_limit_next();
    let err = s.send(&card(), &buttons(false), "U0ALICE").await.unwrap_err();
    assert!(
        matches!(
            err,
            ChannelError::RateLimited {
                channel: "slack",
                retry_after_secs: 7
            }
        ),
        "{err:?}"
    );
    // Unreachable Slack: a transport error, also without the token.
    let dead = Slack::new(SlackConfig {
        api_base: "http://127.0.0.1:9/api".into(),
        bot_token: secret(wrong),
        app_token: None,
        signing_secret: None,
    });
    let err = dead.send(&card(), &buttons(false), "U0ALICE").await.unwrap_err();
    assert!(matches!(err, ChannelError::Transport { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("DISTINCTIVE"));
}
