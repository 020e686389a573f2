//! Webex channel against a local fake Webex that enforces the documented wire format.

mod fake_slack;
mod fake_webex;

use airlock_channels::token::{self, Decision};
use airlock_channels::webex::{Webex, WebexConfig};
use airlock_channels::{Buttons, CallbackError, Channel, Reply, Status};
use airlock_vault::SecretBytes;
use fake_slack::cards::{buttons, card, hostile_card};
use fake_webex::{BOT, Fake, SECRET, actions, assert_inert, shown, sign};
use serde_json::json;

const ALICE: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ";
const MALLORY: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9tYWxsb3J5";

fn webex(fake: &Fake) -> Webex {
    Webex::new(WebexConfig {
        api_base: fake.api_base(),
        bot_token: SecretBytes::new(BOT.as_bytes().to_vec()),
        webhook_secret: SecretBytes::new(SECRET.as_bytes().to_vec()),
    })
}

fn signed_buttons() -> Buttons {
    let t = |d| token::sign(b"button key", "AbCdEfGhIjKl", &card().digest, d, 1_900_000_000);
    Buttons {
        approve: t(Decision::Approve),
        deny: t(Decision::Deny),
        grant: None,
    }
}

fn headers(sig: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("x-spark-signature", sig.parse().unwrap());
    h
}

#[tokio::test]
async fn send_posts_an_adaptive_card_and_a_closed_approval_is_answered_in_its_thread() {
    let fake = Fake::start().await;
    let w = webex(&fake);
    assert_eq!(w.name(), "webex");
    let (c, b) = (card(), buttons(true));
    let msg = w.send(&c, &b, ALICE).await.unwrap();
    let post = &fake.posts()[0];
    assert_eq!(post["toPersonId"], ALICE);
    assert_eq!(
        actions(post),
        vec![
            ("Approve".to_string(), b.approve.clone()),
            ("Deny".to_string(), b.deny.clone()),
            ("Approve for 30 min".to_string(), b.grant.clone().unwrap()),
        ]
    );
    assert_inert(post);
    let text = shown(post);
    for want in [
        "Send email",
        "POST https://api.mail.example/v3/send",
        "build-bot",
        "9f86d081884c",
        "ceo@example.com",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    // Partial approvals change nothing on Webex; a closed one is a reply in the card's thread.
    w.update(
        &c,
        &Status::Pending {
            approved_by: vec!["bob".into()],
        },
        Some(&b),
        &msg,
    )
    .await
    .unwrap();
    assert_eq!(fake.posts().len(), 1);
    let denied = Status::Denied {
        by: "carol".into(),
        at_ms: 0,
    };
    w.update(&c, &denied, Some(&b), &msg).await.unwrap();
    let reply = &fake.posts()[1];
    assert_eq!(
        (reply["roomId"].clone(), reply["parentId"].clone()),
        (post["roomId"].clone(), post["id"].clone())
    );
    assert!(reply["markdown"].as_str().unwrap().contains("Denied by carol"));
    assert!(reply.get("attachments").is_none());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn hostile_request_renders_inert_with_only_our_buttons() {
    let fake = Fake::start().await;
    let w = webex(&fake);
    let mut c = hostile_card();
    let markup =
        "<at>everyone</at> <@all> **bold** [Approve](https://evil.example) <b>x</b> <script>alert(1)</script> # H";
    c.agent = format!("{markup}\u{202E}");
    c.body.text = format!("{markup}\n{}", c.body.text);
    let b = buttons(false);
    w.send(&c, &b, ALICE).await.unwrap();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let post = &fake.posts()[0];
    assert_inert(post);
    assert_eq!(actions(post).len(), 2, "our two buttons, none from the body");
    let text = shown(post);
    for want in [
        "<at>everyone</at>",
        "[Approve](https://evil.example)",
        "<script>",
        "<U+202E>",
        "<U+200B>",
    ] {
        assert!(text.contains(want), "{want} missing");
    }
    assert!(text.contains("more bytes — full request on the dashboard"));
    assert!(text.contains("more parameters — full request on the dashboard"));
    assert!(text.contains("more lines — full request on the dashboard"));
    assert!(text.lines().count() < 120, "the 10,000-line body is cut");
}

#[tokio::test]
async fn webhooks_are_signed_and_the_click_is_what_the_api_says() {
    let fake = Fake::start().await;
    let w = webex(&fake);
    let b = signed_buttons();
    w.send(&card(), &b, ALICE).await.unwrap();
    let msg = fake.posts()[0].clone();
    // The envelope claims Mallory pressed; the API says Alice did: Alice it is.
    let env = fake.press(ALICE, &b.approve, &msg, 0, MALLORY);
    let click = w
        .callback(&headers(&sign(SECRET, &env)), env.as_bytes(), 0)
        .unwrap()
        .unwrap();
    let click = w.resolve(click, fake_webex::now_secs()).await.unwrap().unwrap();
    assert_eq!(
        (click.channel, click.user.as_str(), click.token.as_str()),
        ("webex", ALICE, b.approve.as_str())
    );
    w.acknowledge(
        &click,
        &Reply {
            ok: true,
            text: "Approved <@all>".into(),
        },
    )
    .await
    .unwrap();
    let ack = &fake.posts()[1];
    assert_eq!(ack["parentId"], msg["id"]);
    assert!(ack["markdown"].as_str().unwrap().contains("Approved \\<\\@all\\>"));

    assert_eq!(
        w.callback(&headers(&sign("wrong", &env)), env.as_bytes(), 0),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        w.callback(&http::HeaderMap::new(), env.as_bytes(), 0),
        Err(CallbackError::MissingHeader("X-Spark-Signature"))
    );
    let tampered = env.replace("attachmentActions", "messages");
    assert_eq!(
        w.callback(&headers(&sign(SECRET, &env)), tampered.as_bytes(), 0),
        Err(CallbackError::BadSignature)
    );
    // An action from ten minutes ago is a replay.
    let old = fake.press(ALICE, &b.approve, &msg, 600, ALICE);
    let click = w
        .callback(&headers(&sign(SECRET, &old)), old.as_bytes(), 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        w.resolve(click, fake_webex::now_secs()).await,
        Err(CallbackError::Stale)
    );
    // Other events are not clicks.
    let other = json!({"resource": "messages", "event": "created", "data": {"id": "x"}}).to_string();
    assert_eq!(
        w.callback(&headers(&sign(SECRET, &other)), other.as_bytes(), 0),
        Ok(None)
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
