//! Google Chat channel against a local fake of the Chat API, Google's token endpoint and
//! Chat's signing keys, which signs CARD_CLICKED events with test keys.

mod fake_gchat;
mod fake_slack;

use std::time::Duration;

use airlock_channels::gchat::api::ServiceAccount;
use airlock_channels::gchat::verify::Audience;
use airlock_channels::gchat::{Gchat, GchatConfig};
use airlock_channels::{CallbackError, Channel, Click, Reply, Status};
use airlock_vault::SecretBytes;
use fake_gchat::{Fake, Mint, PROJECT, assert_inert, buttons as card_buttons, key_file, now_secs, shown};
use fake_slack::cards::{buttons, card, hostile_card};
use serde_json::Value;

const ALICE: &str = "users/1234567890";

fn gchat(fake: &Fake) -> Gchat {
    gchat_with(fake, None)
}

fn gchat_with(fake: &Fake, subscription: Option<&str>) -> Gchat {
    Gchat::new(GchatConfig {
        api_base: fake.api_base(),
        service_account: ServiceAccount::from_json(&SecretBytes::new(key_file().into_bytes())).unwrap(),
        token_url: Some(fake.token_url()),
        audience: Some(Audience::parse(PROJECT)),
        subscription: subscription.map(str::to_string),
        pubsub_base: fake.pubsub_base(),
        jwks_url: Some(fake.jwks_url()),
        refetch_after: Duration::ZERO,
    })
}

async fn deliver(g: &Gchat, fake: &Fake, event: &Value, how: Mint) -> Result<Option<Click>, CallbackError> {
    let mut h = http::HeaderMap::new();
    if let Some(b) = fake.bearer(how) {
        h.insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    let Some(c) = g.callback(&h, &serde_json::to_vec(event).unwrap(), 0)? else {
        return Ok(None);
    };
    g.resolve(c, now_secs()).await
}

#[tokio::test]
async fn a_card_reaches_someone_who_added_the_app_and_is_patched_in_place() {
    let fake = Fake::start().await;
    let g = gchat(&fake);
    assert_eq!(g.name(), "gchat");
    let (c, b) = (card(), buttons(true));
    let err = g.send(&c, &b, ALICE).await.unwrap_err().to_string();
    assert!(err.contains("has no direct message with the airlock Chat app"), "{err}");
    let space = fake.add_app(ALICE);
    let msg = g.send(&c, &b, ALICE).await.unwrap();
    let m = fake.messages()[0].clone();
    assert_eq!(m["space"]["name"], space.as_str());
    assert_eq!(msg.0, m["name"].as_str().unwrap());
    assert_eq!(
        card_buttons(&m),
        vec![
            ("Approve".to_string(), b.approve.clone()),
            ("Deny".to_string(), b.deny.clone()),
            ("Approve for 30 min".to_string(), b.grant.clone().unwrap()),
        ]
    );
    assert_inert(&m);
    let text = shown(&m);
    for want in [
        "Send email",
        "POST https://api.mail.example/v3/send",
        "build-bot",
        "9f86d081884c",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    let denied = Status::Denied {
        by: "carol".into(),
        at_ms: 0,
    };
    g.update(&c, &denied, Some(&b), &msg).await.unwrap();
    let (name, patch) = fake.patches()[0].clone();
    assert_eq!(name, msg.0);
    assert!(card_buttons(&patch).is_empty(), "closed: no buttons");
    assert!(shown(&patch).contains("Denied by carol"));
    assert_eq!(fake.token_calls(), 1, "one service-account token for all of it");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn hostile_request_renders_inert_with_only_our_buttons() {
    let fake = Fake::start().await;
    let g = gchat(&fake);
    fake.add_app(ALICE);
    let mut c = hostile_card();
    let markup = "<users/all> <a href=\"https://evil.example\">Approve</a> <b>x</b> <font color=\"#f00\">y</font> \
                  <script>alert(1)</script> *bold* &lt;";
    c.agent = format!("{markup}\u{202E}");
    c.body.text = format!("{markup}\n{}", c.body.text);
    g.send(&c, &buttons(false), ALICE).await.unwrap();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let m = fake.messages()[0].clone();
    assert_inert(&m);
    assert_eq!(card_buttons(&m).len(), 2, "our two buttons, none from the body");
    let text = shown(&m);
    for want in [
        "<users/all>",
        "<a href=\"https://evil.example\">",
        "<script>",
        "&lt;",
        "<U+202E>",
        "<U+200B>",
    ] {
        assert!(text.contains(want), "{want} missing");
    }
    assert!(text.contains("more bytes — full request on the dashboard"));
    assert!(text.lines().count() < 120, "the 10,000-line body is cut");
}

#[tokio::test]
async fn presses_count_only_with_a_valid_chat_token() {
    let fake = Fake::start().await;
    let g = gchat(&fake);
    fake.add_app(ALICE);
    let b = buttons(false);
    g.send(&card(), &b, ALICE).await.unwrap();
    let m = fake.messages()[0].clone();
    let press = fake.press(ALICE, &m, &b.approve);
    for (how, want) in [
        (Mint::Expired, CallbackError::Stale),
        (Mint::WrongAudience, CallbackError::BadSignature),
        (Mint::WrongIssuer, CallbackError::BadSignature),
        (Mint::UnknownKey, CallbackError::BadSignature),
        (Mint::Unsigned, CallbackError::MissingHeader("authorization")),
    ] {
        assert_eq!(deliver(&g, &fake, &press, how).await, Err(want), "{how:?}");
    }
    let click = deliver(&g, &fake, &press, Mint::Valid).await.unwrap().unwrap();
    assert_eq!(
        (click.channel, click.user.as_str(), click.token.as_str()),
        ("gchat", ALICE, b.approve.as_str())
    );
    let answer = g
        .callback_answer(
            b"{}",
            Some(&Reply {
                ok: false,
                text: "You are not configured <users/all>".into(),
            }),
        )
        .unwrap();
    assert_eq!(answer["actionResponse"]["type"], "NEW_MESSAGE");
    assert!(answer["text"].as_str().unwrap().contains("&lt;users/all&gt;"));
    // Other events are answered with nothing.
    let mut added = press.clone();
    added["type"] = "ADDED_TO_SPACE".into();
    assert_eq!(deliver(&g, &fake, &added, Mint::Valid).await, Ok(None));
}

/// A reader that stops before the hub applied a pulled click leaves it unacknowledged; Pub/Sub
/// delivers it again to the next reader, which acknowledges it once applied.
#[tokio::test]
async fn pub_sub_clicks_are_acknowledged_only_once_applied() {
    let fake = Fake::start().await;
    fake.add_app(ALICE);
    let b = buttons(false);
    let first = std::sync::Arc::new(gchat_with(&fake, Some(fake_gchat::SUBSCRIPTION)));
    first.send(&card(), &b, ALICE).await.unwrap();
    let m = fake.messages()[0].clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    first.start(tx, shutdown);
    let ack = fake.publish(fake.press(ALICE, &m, &b.approve));
    let click = rx.recv().await.unwrap();
    assert_eq!((click.user.as_str(), click.token.as_str()), (ALICE, b.approve.as_str()));
    // The reader stops (the replica lost the feed lock) before the hub is done.
    stop.send(true).unwrap();
    assert!(rx.recv().await.is_none(), "the first reader stopped");
    drop(click);
    assert!(!fake.acked().contains(&ack));

    fake.expire_leases();
    let second = std::sync::Arc::new(gchat_with(&fake, Some(fake_gchat::SUBSCRIPTION)));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    second.start(tx, shutdown);
    let again = rx.recv().await.unwrap();
    assert_eq!(again.token, b.approve, "delivered again");
    assert!(!fake.acked().contains(&ack), "not acknowledged before it is applied");
    drop(again);
    let mut fake = fake;
    fake.wait_until("the acknowledgement", |f| f.acked().contains(&ack))
        .await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
