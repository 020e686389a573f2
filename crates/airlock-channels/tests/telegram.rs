//! The Telegram channel against a local fake Bot API that enforces the documented format.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use airlock_channels::telegram::{Telegram, TelegramConfig, keyboard, message_html};
use airlock_channels::{CallbackError, Channel, ChannelError, Click, MessageRef, Reply, Status};
use airlock_vault::SecretBytes;
use axum::http::StatusCode;
use fake::telegram::{FakeTelegram, TOKEN};
use fake::tg_html;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

fn telegram(base: &str, webhook_secret: Option<&str>) -> Telegram {
    Telegram::new(TelegramConfig {
        api_base: base.to_string(),
        bot_token: SecretBytes::new(TOKEN.as_bytes().to_vec()),
        webhook_secret: webhook_secret.map(|s| SecretBytes::new(s.as_bytes().to_vec())),
    })
}

/// The callback_data of every button, row by row.
fn tokens(markup: &Value) -> Vec<Vec<String>> {
    markup["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|b| b["callback_data"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn plain(html: &str) -> String {
    tg_html::parse(html).unwrap_or_else(|e| panic!("{e}\n{html}")).text
}

#[test]
fn the_fakes_html_parser_is_strict() {
    let ok = tg_html::parse("<b>a &amp; b</b> <pre><code class=\"language-rust\">x &lt; y</code></pre> &#x41;&#66;")
        .unwrap();
    assert_eq!(ok.text, "a & b x < y AB");
    for bad in [
        "a < b",
        "a > b",
        "R&D",
        "&nbsp;",
        "<b>x",
        "<b>x</i>",
        "<script>x</script>",
        "<pre><b>x</b></pre>",
        "<code>a<i>b</i></code>",
        "<a>x</a>",
        "<b onclick=\"x\">y</b>",
        "<code class=\"language-x\">y</code>",
    ] {
        assert!(tg_html::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn send_then_update_to_approved_removes_the_buttons() {
    let tg_fake = FakeTelegram::start().await;
    let tg = telegram(&tg_fake.base, None);
    let card = fake::card();
    let buttons = fake::buttons(&card);

    let msg = tg.send(&card, &buttons, "4242").await.unwrap();
    assert_eq!(msg, MessageRef("4242/1".into()));
    let sent = &tg_fake.calls("sendMessage")[0];
    assert_eq!(sent["chat_id"], "4242");
    assert_eq!(sent["parse_mode"], "HTML");
    assert_eq!(sent["link_preview_options"], json!({ "is_disabled": true }));
    let grant = buttons.grant.clone().unwrap();
    assert_eq!(
        tokens(&sent["reply_markup"]),
        vec![vec![buttons.approve.clone(), buttons.deny.clone()], vec![grant]]
    );
    assert_eq!(
        sent["reply_markup"]["inline_keyboard"][1][0]["text"],
        "✅ Approve for 15 min"
    );
    let text = plain(sent["text"].as_str().unwrap());
    for want in [
        "Approval needed: POST api.stripe.com",
        "Agent: billing-bot",
        "Rule payments: Money leaves the company",
        "Approvers: finance · 2 approvals needed",
        "POST https://api.stripe.com/v1/payouts",
        "expand = destination",
        "authorization: [redacted]",
        "\"amount\": 5000",
        "Digest 9f86d081884c",
        "expires 2024-05-01 14:15 UTC",
        "Waiting for approval",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }

    // One approval of two: the text changes, the buttons stay.
    let one = Status::Pending {
        approved_by: vec!["alice".into()],
    };
    tg.update(&card, &one, Some(&buttons), &msg).await.unwrap();
    let edit = &tg_fake.calls("editMessageText")[0];
    assert_eq!(
        (edit["chat_id"].as_str(), edit["message_id"].as_i64()),
        (Some("4242"), Some(1))
    );
    assert!(plain(edit["text"].as_str().unwrap()).contains("1 of 2 approvals: alice"));
    assert_eq!(edit["reply_markup"], sent["reply_markup"]);

    let approved = Status::Approved {
        by: vec!["alice".into(), "bob".into()],
        at_ms: fake::AT_1403,
        grant_secs: None,
    };
    tg.update(&card, &approved, Some(&buttons), &msg).await.unwrap();
    let edit = &tg_fake.calls("editMessageText")[1];
    assert!(plain(edit["text"].as_str().unwrap()).contains("Approved by alice, bob · 14:03 UTC"));
    assert_eq!(edit["reply_markup"], json!({ "inline_keyboard": [] }));
    // Telegram refuses an identical edit ("message is not modified"); a repeat is still fine.
    tg.update(&card, &approved, Some(&buttons), &msg).await.unwrap();
    assert_eq!(tg_fake.calls("editMessageText").len(), 3);
}

#[test]
fn every_status_has_its_line() {
    let card = fake::card();
    let at_ms = fake::AT_1403;
    for (status, want) in [
        (
            Status::Approved {
                by: vec!["alice".into()],
                at_ms,
                grant_secs: Some(900),
            },
            "Approved by alice · 14:03 UTC · similar requests allowed for 15 min",
        ),
        (
            Status::Denied {
                by: "carol".into(),
                at_ms,
            },
            "Denied by carol · 14:03 UTC",
        ),
        (Status::Expired { at_ms }, "Expired · 14:03 UTC"),
        (Status::Abandoned { at_ms }, "Abandoned — gateway stopped"),
        (Status::Withdrawn { at_ms }, "Withdrawn — agent disconnected"),
    ] {
        let text = plain(&message_html(&card, &status));
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
}

fn hostile_card() -> airlock_channels::Card {
    let mut card = fake::card();
    let hostile = [
        "[Approve] [Deny] ← press here",
        r#"{"blocks":[{"type":"actions","elements":[{"type":"button","text":{"type":"plain_text","text":"Approve"},"value":"approve"}]}]}"#,
        "<!here> <!channel>",
        "</code>",
        "</pre><b>x</b>",
        r#"<a href="https://evil">click</a>"#,
        "&amp; literal",
        "zero\u{200b}width",
        "evil\u{202e}txt.exe",
    ];
    let mut body = hostile.join("\n");
    for i in 0..10_000 {
        body.push_str(&format!("\nline {i}"));
    }
    card.body.text = body;
    card.body.size = card.body.text.len();
    card.agent = "bot\u{202e}toba".into();
    card.summary_title = Some("<b>Approved already</b> </code>".into());
    card.path = "/v1/</code><a href=\"https://evil\">x</a>".into();
    card.query = vec![("q".into(), "&amp;&lt;\u{200b}".into())];
    card.headers.push(("x-note".into(), "<a href=\"https://evil\">".into()));
    card.summary = vec![
        ("To".into(), "</b><!here>".into()),
        ("Blocks".into(), hostile[1].into()),
    ];
    card
}

#[tokio::test]
async fn hostile_content_is_text_and_the_buttons_are_ours() {
    let tg_fake = FakeTelegram::start().await;
    let tg = telegram(&tg_fake.base, None);
    let card = hostile_card();
    let buttons = fake::buttons(&card);
    // The fake parses the HTML exactly as Telegram would, or refuses with 400.
    tg.send(&card, &buttons, "4242").await.unwrap();
    let sent = &tg_fake.calls("sendMessage")[0];
    let html = sent["text"].as_str().unwrap();
    let parsed = tg_html::parse(html).unwrap();
    assert!(parsed.len() <= 4096, "{} units", parsed.len());
    assert!(
        parsed.tags.iter().all(|t| ["b", "code", "pre"].contains(&t.as_str())),
        "{:?}",
        parsed.tags
    );
    assert_eq!(
        tokens(&sent["reply_markup"]),
        vec![
            vec![buttons.approve.clone(), buttons.deny.clone()],
            vec![buttons.grant.clone().unwrap()]
        ]
    );
    let text = &parsed.text;
    for literal in [
        "</pre><b>x</b>",
        "</code>",
        r#"<a href="https://evil">click</a>"#,
        "&amp; literal",
        "<!here>",
        "[Approve] [Deny]",
        "<b>Approved already</b>",
        "bot<U+202E>toba",
        "zero<U+200B>width",
        "more bytes — full request on the dashboard",
    ] {
        assert!(text.contains(literal), "{literal:?} missing from:\n{text}");
    }
    assert!(!html.contains('\u{202e}') && !html.contains('\u{200b}'));
    assert!(!text.contains("line 9999"));
}

#[test]
fn oversized_everything_still_fits() {
    let mut card = hostile_card();
    card.summary_title = Some("T".repeat(10_000));
    card.path = format!("/{}", "p".repeat(10_000));
    card.headers = (0..500).map(|i| (format!("x-h{i}"), "v".repeat(1000))).collect();
    card.query = (0..500).map(|i| (format!("k{i}"), "😀".repeat(500))).collect();
    card.summary = (0..500).map(|i| (format!("L{i}"), "&".repeat(500))).collect();
    for body in [
        "\u{202e}".repeat(5000),
        "😀".repeat(5000),
        "&<>\"".repeat(5000),
        String::new(),
    ] {
        card.body.text = body;
        let html = message_html(&card, &Status::Pending { approved_by: vec![] });
        let parsed = tg_html::parse(&html).unwrap();
        assert!(parsed.len() <= 4096, "{} units", parsed.len());
        assert!(parsed.text.contains("more on the dashboard"));
        assert!(parsed.text.contains("Digest 9f86d081884c"), "the tail is never cut");
    }
}

#[test]
fn keyboard_without_grant() {
    let mut card = fake::card();
    card.grant_secs = None;
    let buttons = fake::buttons(&card);
    let kb = keyboard(&buttons, None);
    assert_eq!(tokens(&kb), vec![vec![buttons.approve, buttons.deny]]);
}

async fn next_click(rx: &mut mpsc::Receiver<Click>) -> Click {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a click in time")
        .expect("poller running")
}

/// The poller owns the click sender, so the receiver closing means the poller has stopped.
async fn assert_stops(rx: &mut mpsc::Receiver<Click>) {
    let end = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
    assert!(matches!(end, Ok(None)), "the poller did not stop promptly: {end:?}");
}

#[tokio::test]
async fn polling_delivers_in_order_and_never_twice() {
    let tg_fake = FakeTelegram::start().await;
    // The default 25 s long poll: stopping must not wait for it.
    let tg = Arc::new(telegram(&tg_fake.base, None));
    tg_fake.push_click(42, "tok-1");
    tg_fake.push_update(json!({ "message": { "message_id": 9, "date": 0, "chat": { "id": 42 }, "text": "hi" } }));
    tg_fake.push_click(43, "tok-3");
    tg_fake.push_click(42, "tok-4");

    let (tx, mut rx) = mpsc::channel(8);
    let (stop, shutdown) = watch::channel(false);
    tg.clone().start(tx, shutdown);
    let got: Vec<(String, String)> = [
        next_click(&mut rx).await,
        next_click(&mut rx).await,
        next_click(&mut rx).await,
    ]
    .into_iter()
    .map(|c| (c.user, c.token))
    .collect();
    assert_eq!(
        got,
        [("42", "tok-1"), ("43", "tok-3"), ("42", "tok-4")].map(|(u, t)| (u.to_string(), t.to_string()))
    );
    // The next poll confirms all four (the message update included), and waits.
    tg_fake
        .wait_for("getUpdates with offset 5", |calls| {
            calls.iter().any(|(m, b)| m == "getUpdates" && b["offset"] == 5)
        })
        .await;
    let first = &tg_fake.calls("getUpdates")[0];
    assert_eq!(first["allowed_updates"], json!(["callback_query"]));
    assert_eq!(first["timeout"], 25);
    assert!(first.get("offset").is_none());

    // A click during the long poll wakes it.
    tg_fake.push_click(44, "tok-5");
    let c = next_click(&mut rx).await;
    assert_eq!((c.user.as_str(), c.token.as_str()), ("44", "tok-5"));
    assert_eq!(c.ack["callback_query_id"], "cq5");
    stop.send(true).unwrap();
    assert_stops(&mut rx).await;
    assert_eq!(tg_fake.unconfirmed(), 0, "handed-over clicks are confirmed at shutdown");

    // A new poller sees only what came after.
    tg_fake.push_click(45, "tok-6");
    let (tx, mut rx) = mpsc::channel(8);
    let (stop, shutdown) = watch::channel(false);
    tg.clone().start(tx, shutdown);
    assert_eq!(next_click(&mut rx).await.token, "tok-6");
    drop(stop); // a dropped shutdown sender also stops the poller
    assert_stops(&mut rx).await;
}

/// A fake Bot API holding one click ("tok-1" from user 42, its update id returned) and a
/// poller reading it: its clicks and its stop switch.
async fn polling_one_click() -> (
    FakeTelegram,
    Arc<Telegram>,
    i64,
    mpsc::Receiver<Click>,
    watch::Sender<bool>,
) {
    let tg_fake = FakeTelegram::start().await;
    let tg = Arc::new(telegram(&tg_fake.base, None));
    let first = tg_fake.push_click(42, "tok-1");
    let (tx, rx) = mpsc::channel(8);
    let (stop, shutdown) = watch::channel(false);
    tg.clone().start(tx, shutdown);
    (tg_fake, tg, first, rx, stop)
}

/// The next getUpdates confirms the last batch, so it waits until the hub has applied every
/// click of it (each click's `Done` guard dropped): a reader that dies meanwhile leaves the
/// click to the next reader instead of losing it.
#[tokio::test]
async fn polling_confirms_a_click_only_once_the_hub_has_applied_it() {
    let (tg_fake, _tg, first, mut rx, stop) = polling_one_click().await;
    let applying = next_click(&mut rx).await;
    assert_eq!(applying.token, "tok-1");
    tg_fake.push_click(42, "tok-2");
    // While tok-1 is being applied, nothing is confirmed and nothing more is fetched. (An
    // absence has no event to await: a poller ignoring the guard answers within milliseconds.)
    let early = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(early.is_err(), "fetched past a click not yet applied: {early:?}");
    assert_eq!((tg_fake.calls("getUpdates").len(), tg_fake.unconfirmed()), (1, 2));
    drop(applying);
    let second = next_click(&mut rx).await;
    assert_eq!(second.token, "tok-2");
    let polls = tg_fake.calls("getUpdates");
    assert_eq!((polls.len(), &polls[1]["offset"]), (2, &json!(first + 1)));
    assert_eq!(tg_fake.unconfirmed(), 1, "tok-1 confirmed, tok-2 not yet");
    drop(second);
    stop.send(true).unwrap();
    assert_stops(&mut rx).await;
}

/// An update sent again after its offset was confirmed (a retried response, a proxy replaying
/// one) is skipped: no second vote attempt, no second answer to a spent callback query id.
#[tokio::test]
async fn polling_skips_updates_below_the_confirmed_offset() {
    let (tg_fake, tg, first, mut rx, stop) = polling_one_click().await;
    // The hub's part: apply each click it receives, then answer its callback query.
    let reply = Reply {
        ok: true,
        text: "Approved".into(),
    };
    let click = next_click(&mut rx).await;
    assert_eq!(click.token, "tok-1");
    tg.acknowledge(&click, &reply).await.unwrap();
    drop(click);
    tg_fake
        .wait_for("the getUpdates confirming tok-1", |calls| {
            calls.iter().any(|(m, b)| m == "getUpdates" && b["offset"] == first + 1)
        })
        .await;

    tg_fake.redeliver(first);
    tg_fake.push_click(43, "tok-2");
    let click = next_click(&mut rx).await;
    assert_eq!(click.token, "tok-2", "a confirmed update was handed over again");
    tg.acknowledge(&click, &reply).await.unwrap();
    drop(click);
    assert_eq!(tg_fake.pending_redeliveries(), 0, "the fake sent the old update again");
    let answered: Vec<Value> = tg_fake
        .calls("answerCallbackQuery")
        .iter()
        .map(|b| b["callback_query_id"].clone())
        .collect();
    assert_eq!(answered, [json!("cq1"), json!("cq2")]);
    stop.send(true).unwrap();
    assert_stops(&mut rx).await;
}

#[tokio::test]
async fn polling_backs_off_on_errors_and_recovers() {
    let tg_fake = FakeTelegram::start().await;
    let tg = Arc::new(telegram(&tg_fake.base, None).with_poll_timeout(1));
    tg_fake.fail_next(
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": { "retry_after": 1 } }),
    );
    tg_fake.push_click(42, "tok-1");
    let (tx, mut rx) = mpsc::channel(8);
    let (stop, shutdown) = watch::channel(false);
    tg.clone().start(tx, shutdown);
    assert_eq!(next_click(&mut rx).await.token, "tok-1");
    assert!(tg_fake.calls("getUpdates").len() >= 2);
    stop.send(true).unwrap();
    assert_stops(&mut rx).await;
}

#[tokio::test]
async fn webhook_mode_does_not_poll() {
    let tg_fake = FakeTelegram::start().await;
    let tg = Arc::new(telegram(&tg_fake.base, Some("hook-secret")));
    let (tx, mut rx) = mpsc::channel(8);
    let (_stop, shutdown) = watch::channel(false);
    tg.start(tx, shutdown);
    assert_stops(&mut rx).await;
    assert!(tg_fake.calls("getUpdates").is_empty());
}

#[test]
fn webhook_callbacks_need_the_secret_token() {
    let tg = telegram("http://127.0.0.1:9", Some("hook-secret_123"));
    let update = json!({ "update_id": 10, "callback_query": {
        "id": "4382", "from": { "id": 42, "is_bot": false, "first_name": "A" }, "chat_instance": "1",
        "data": "tok", "message": { "message_id": 7, "date": 0, "chat": { "id": 42, "type": "private" } },
    }});
    let body = serde_json::to_vec(&update).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-telegram-bot-api-secret-token", "hook-secret_123".parse().unwrap());
    let click = tg.callback(&headers, &body, 0).unwrap().unwrap();
    assert_eq!(
        click,
        Click {
            done: Default::default(),
            channel: "telegram",
            user: "42".into(),
            token: "tok".into(),
            ack: json!({ "callback_query_id": "4382", "chat_id": 42, "message_id": 7 }),
        }
    );
    let message = br#"{"update_id": 11, "message": {"message_id": 1, "date": 0, "chat": {"id": 42}}}"#;
    assert_eq!(tg.callback(&headers, message, 0), Ok(None));
    assert!(matches!(
        tg.callback(&headers, b"not json", 0),
        Err(CallbackError::Malformed(_))
    ));
    assert!(matches!(
        tg.callback(&headers, b"[1]", 0),
        Err(CallbackError::Malformed(_))
    ));

    let mut wrong = http::HeaderMap::new();
    wrong.insert("x-telegram-bot-api-secret-token", "hook-secret_124".parse().unwrap());
    assert_eq!(tg.callback(&wrong, &body, 0), Err(CallbackError::BadSignature));
    wrong.insert("x-telegram-bot-api-secret-token", "hook-secret_12".parse().unwrap());
    assert_eq!(tg.callback(&wrong, &body, 0), Err(CallbackError::BadSignature));
    assert!(matches!(
        tg.callback(&http::HeaderMap::new(), &body, 0),
        Err(CallbackError::MissingHeader(_))
    ));
    // Polling mode has no webhook endpoint.
    let polling = telegram("http://127.0.0.1:9", None);
    assert_eq!(polling.callback(&headers, &body, 0), Err(CallbackError::NotSupported));
}

#[tokio::test]
async fn acknowledge_answers_the_callback_query() {
    let tg_fake = FakeTelegram::start().await;
    let tg = telegram(&tg_fake.base, None);
    let click = Click {
        done: Default::default(),
        channel: "telegram",
        user: "42".into(),
        token: "tok".into(),
        ack: json!({ "callback_query_id": "4382", "chat_id": 42, "message_id": 7 }),
    };
    let counted = Reply {
        ok: true,
        text: "Approved (1 of 2)".into(),
    };
    tg.acknowledge(&click, &counted).await.unwrap();
    let refused = Reply {
        ok: false,
        text: format!("You are not an approver for this rule. {}", "x".repeat(500)),
    };
    tg.acknowledge(&click, &refused).await.unwrap();
    let calls = tg_fake.calls("answerCallbackQuery");
    assert_eq!(
        calls[0],
        json!({ "callback_query_id": "4382", "text": "Approved (1 of 2)", "show_alert": false })
    );
    assert_eq!(calls[1]["show_alert"], true);
    assert!(
        calls[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("You are not an approver")
    );

    let no_ack = Click {
        done: Default::default(),
        ack: json!({}),
        ..click
    };
    assert!(matches!(
        tg.acknowledge(&no_ack, &counted).await,
        Err(ChannelError::Platform { .. })
    ));
}

fn assert_no_token(e: &ChannelError) {
    for s in [e.to_string(), format!("{e:?}")] {
        assert!(!s.contains(TOKEN) && !s.contains("DISTINCTIVE"), "token leaked: {s}");
    }
}

#[tokio::test]
async fn errors_never_show_the_token() {
    let tg_fake = FakeTelegram::start().await;
    let card = fake::card();
    let buttons = fake::buttons(&card);

    // Wrong token: Telegram answers 401.
    let wrong = Telegram::new(TelegramConfig {
        api_base: tg_fake.base.clone(),
        bot_token: SecretBytes::new(b"999:WrongToken-DISTINCTIVE".to_vec()),
        webhook_secret: None,
    });
    let e = wrong.send(&card, &buttons, "4242").await.unwrap_err();
    assert!(
        matches!(&e, ChannelError::Platform { detail, .. } if detail.contains("Unauthorized")),
        "{e}"
    );
    assert_no_token(&e);

    // A refused call, a rate limit, and a garbage answer.
    let tg = telegram(&tg_fake.base, None);
    let e = tg
        .update(
            &card,
            &Status::Expired { at_ms: 0 },
            None,
            &MessageRef("4242/77".into()),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("message to edit not found"), "{e}");
    assert_no_token(&e);
    tg_fake.fail_next(
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": { "retry_after": 7 } }),
    );
    let e = tg.send(&card, &buttons, "4242").await.unwrap_err();
    assert!(
        matches!(
            e,
            ChannelError::RateLimited {
                retry_after_secs: 7,
                ..
            }
        ),
        "{e}"
    );
    tg_fake.fail_next(StatusCode::BAD_GATEWAY, json!("<html>bad gateway</html>"));
    let e = tg.send(&card, &buttons, "4242").await.unwrap_err();
    assert!(matches!(e, ChannelError::Platform { .. }), "{e}");
    assert_no_token(&e);

    // Nobody listening: a transport error, with the URL stripped.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = telegram(&format!("http://127.0.0.1:{port}"), None);
    let e = down.send(&card, &buttons, "4242").await.unwrap_err();
    assert!(matches!(e, ChannelError::Transport { .. }), "{e}");
    assert_no_token(&e);
    let e = down
        .acknowledge(
            &Click {
                done: Default::default(),
                channel: "telegram",
                user: "1".into(),
                token: "t".into(),
                ack: json!({"callback_query_id": "1"}),
            },
            &Reply {
                ok: true,
                text: "ok".into(),
            },
        )
        .await
        .unwrap_err();
    assert_no_token(&e);

    // Nor does the channel's own Debug.
    let dbg = format!("{tg:?}");
    assert!(!dbg.contains("DISTINCTIVE"), "{dbg}");

    // A token that cannot be a Bot API token is never put in a URL.
    let odd = Telegram::new(TelegramConfig {
        api_base: tg_fake.base.clone(),
        bot_token: SecretBytes::new(b"12/../DISTINCTIVE".to_vec()),
        webhook_secret: None,
    });
    let before = tg_fake.calls("sendMessage").len();
    let e = odd.send(&card, &buttons, "4242").await.unwrap_err();
    assert_no_token(&e);
    assert_eq!(tg_fake.calls("sendMessage").len(), before);
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_sending() {
    let tg_fake = FakeTelegram::start().await;
    let tg = telegram(&tg_fake.base, None);
    let card = fake::card();
    let mut buttons = fake::buttons(&card);
    buttons.deny = "d".repeat(65);
    assert!(matches!(
        tg.send(&card, &buttons, "4242").await,
        Err(ChannelError::Platform { .. })
    ));
    assert!(tg_fake.calls("sendMessage").is_empty());
}
