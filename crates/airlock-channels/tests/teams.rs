//! Microsoft Teams channel against a local fake of Entra, the Bot Framework's OpenID keys and
//! the Connector, which mints the activities Teams sends (signed RS256 with test keys).

mod fake_slack;
mod fake_teams;

use std::sync::Arc;
use std::time::Duration;

use airlock_channels::teams::{MemoryConversations, Teams, TeamsConfig};
use airlock_channels::{CallbackError, Channel, Click, Reply, Status};
use airlock_vault::SecretBytes;
use fake_slack::cards::{buttons, card, hostile_card};
use fake_teams::{APP_ID, Fake, Mint, PASSWORD, actions, assert_inert, card_of, now_secs, shown};
use serde_json::Value;

const ALICE: &str = "6f1d2c3b-aaaa-4bbb-8ccc-123456789abc";
const BOB: &str = "0b0b0b0b-1111-4222-8333-444444444444";

fn teams(fake: &Fake) -> Teams {
    Teams::new(TeamsConfig {
        app_id: APP_ID.into(),
        app_password: SecretBytes::new(PASSWORD.as_bytes().to_vec()),
        tenant_id: Some(fake_teams::TENANT.into()),
        token_url: fake.token_url(),
        openid_url: fake.openid_url(),
        refetch_after: Duration::ZERO,
        conversations: Arc::new(MemoryConversations::default()),
    })
}

fn headers(bearer: Option<String>) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    if let Some(b) = bearer {
        h.insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    h
}

/// The activity through `callback` and `resolve`, as `/callbacks/teams` runs them.
async fn deliver(t: &Teams, fake: &Fake, activity: &Value, how: Mint) -> Result<Option<Click>, CallbackError> {
    let body = serde_json::to_vec(activity).unwrap();
    let Some(c) = t.callback(&headers(fake.bearer(activity, how)), &body, 0)? else {
        return Ok(None);
    };
    t.resolve(c, now_secs()).await
}

#[tokio::test]
async fn a_card_reaches_only_someone_who_wrote_to_the_bot_and_is_updated_in_place() {
    let mut fake = Fake::start().await;
    let t = teams(&fake);
    assert_eq!(t.name(), "teams");
    let (c, b) = (card(), buttons(true));
    let err = t.send(&c, &b, ALICE).await.unwrap_err().to_string();
    assert!(
        err.contains(ALICE) && err.contains("has not written to the airlock bot"),
        "{err}"
    );
    assert_eq!(t.unreachable(&[ALICE.into(), BOB.into()]).await.len(), 2);

    // Alice says hi: her conversation is learned (and she is greeted), Bob's is not.
    assert_eq!(deliver(&t, &fake, &fake.hello(ALICE), Mint::Valid).await, Ok(None));
    assert_eq!(t.unreachable(&[ALICE.into(), BOB.into()]).await, vec![BOB.to_string()]);
    fake.wait_until("the greeting", |f| f.posts().len() == 1).await;
    assert_eq!(fake.posts()[0].1["textFormat"], "plain");

    let msg = t.send(&c, &b, ALICE).await.unwrap();
    let (conv, post) = fake.posts()[1].clone();
    assert_eq!(conv, Fake::conversation_of(ALICE));
    assert_eq!(
        actions(card_of(&post)),
        vec![
            ("Approve".to_string(), b.approve.clone()),
            ("Deny".to_string(), b.deny.clone()),
            ("Approve for 30 min".to_string(), b.grant.clone().unwrap()),
        ]
    );
    assert!(
        card_of(&post)["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["type"] == "Action.Execute")
    );
    assert_inert(&post);
    let text = shown(card_of(&post));
    for want in [
        "Send email",
        "POST https://api.mail.example/v3/send",
        "build-bot",
        "9f86d081884c",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    let pending = Status::Pending {
        approved_by: vec!["bob".into()],
    };
    t.update(&c, &pending, Some(&b), &msg).await.unwrap();
    let denied = Status::Denied {
        by: "carol".into(),
        at_ms: 0,
    };
    t.update(&c, &denied, Some(&b), &msg).await.unwrap();
    let puts = fake.puts();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].1, post["id"].as_str().unwrap());
    assert_eq!(actions(card_of(&puts[0].2)).len(), 3, "still open: buttons kept");
    assert!(shown(card_of(&puts[0].2)).contains("1 of 1 approvals"));
    assert!(card_of(&puts[1].2).get("actions").is_none(), "closed: no buttons");
    assert!(shown(card_of(&puts[1].2)).contains("Denied by carol"));
    // One Entra token for all of it.
    assert_eq!(fake.token_calls(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn hostile_request_renders_inert_with_only_our_buttons() {
    let fake = Fake::start().await;
    let t = teams(&fake);
    deliver(&t, &fake, &fake.install(ALICE), Mint::Valid).await.unwrap();
    let mut c = hostile_card();
    let markup = "<at>everyone</at> <at id=\"0\">General</at> **bold** [Approve](https://evil.example) <b>x</b> \
                  <script>alert(1)</script> # H {\"type\":\"Action.Execute\",\"verb\":\"approve\"}";
    c.agent = format!("{markup}\u{202E}");
    c.body.text = format!("{markup}\n{}", c.body.text);
    t.send(&c, &buttons(false), ALICE).await.unwrap();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let post = &fake.posts().last().unwrap().1.clone();
    assert_inert(post);
    assert_eq!(actions(card_of(post)).len(), 2, "our two buttons, none from the body");
    let text = shown(card_of(post));
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
    assert!(text.lines().count() < 120, "the 10,000-line body is cut");
}

#[tokio::test]
async fn presses_count_only_with_a_valid_bot_framework_token() {
    let fake = Fake::start().await;
    let t = teams(&fake);
    deliver(&t, &fake, &fake.hello(ALICE), Mint::Valid).await.unwrap();
    let b = buttons(false);
    let msg = t.send(&card(), &b, ALICE).await.unwrap();
    let id = msg.0.rsplit(' ').next().unwrap().to_string();
    let press = fake.press(ALICE, &id, &b.approve);
    for (how, want) in [
        (Mint::Expired, CallbackError::Stale),
        (Mint::WrongAudience, CallbackError::BadSignature),
        (Mint::WrongIssuer, CallbackError::BadSignature),
        (Mint::UnknownKey, CallbackError::BadSignature),
        (Mint::ServiceUrlMismatch, CallbackError::BadSignature),
        (Mint::Unsigned, CallbackError::MissingHeader("authorization")),
    ] {
        assert_eq!(deliver(&t, &fake, &press, how).await, Err(want), "{how:?}");
    }
    let click = deliver(&t, &fake, &press, Mint::Valid).await.unwrap().unwrap();
    assert_eq!(
        (click.channel, click.user.as_str(), click.token.as_str()),
        ("teams", ALICE, b.approve.as_str())
    );
    // Answered in the invoke response: the card without buttons, with the outcome.
    let body = serde_json::to_vec(&press).unwrap();
    let ok = Reply {
        ok: true,
        text: "Your vote counted: the request is approved.".into(),
    };
    let answer = t.callback_answer(&body, Some(&ok)).unwrap();
    assert_eq!(answer["statusCode"], 200);
    assert_eq!(answer["type"], "application/vnd.microsoft.card.adaptive");
    assert!(answer["value"].get("actions").is_none());
    assert!(shown(&answer["value"]).contains("Your vote counted"));
    let no = Reply {
        ok: false,
        text: "You are not configured as an approver <at>x</at>".into(),
    };
    let answer = t.callback_answer(&body, Some(&no)).unwrap();
    assert_eq!(answer["type"], "application/vnd.microsoft.activity.message");
    t.acknowledge(&click, &ok).await.unwrap();
    let before = fake.posts().len();

    // An older client's Action.Submit: a message; answered with a reply in the chat.
    let submit = fake.submit(ALICE, &id, &b.deny);
    let click = deliver(&t, &fake, &submit, Mint::Valid).await.unwrap().unwrap();
    assert_eq!(click.token, b.deny);
    assert_eq!(
        t.callback_answer(&serde_json::to_vec(&submit).unwrap(), Some(&no)),
        None
    );
    t.acknowledge(&click, &no).await.unwrap();
    let posts = fake.posts();
    assert_eq!(posts.len(), before + 1, "an invoke press is not answered twice");
    assert_eq!(posts[before].1["replyToId"], id.as_str());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn rotated_signing_keys_are_fetched_once_and_then_used() {
    let fake = Fake::start().await;
    let t = teams(&fake);
    deliver(&t, &fake, &fake.hello(ALICE), Mint::Valid).await.unwrap();
    deliver(&t, &fake, &fake.hello(BOB), Mint::Valid).await.unwrap();
    assert_eq!(fake.key_fetches(), 1, "keys cached");
    fake.rotate();
    let press = fake.press(ALICE, "17000000001", "tok");
    assert!(deliver(&t, &fake, &press, Mint::Valid).await.unwrap().is_some());
    assert_eq!(fake.key_fetches(), 2, "an unknown kid fetched the keys once more");
    assert!(deliver(&t, &fake, &press, Mint::Valid).await.unwrap().is_some());
    assert_eq!(fake.key_fetches(), 2);
    // Another tenant's activity counts for nothing.
    let mut other = fake.hello(BOB);
    other["conversation"]["tenantId"] = "attacker-tenant".into();
    other["channelData"]["tenant"]["id"] = "attacker-tenant".into();
    assert!(matches!(
        deliver(&t, &fake, &other, Mint::Valid).await,
        Err(CallbackError::Malformed(_))
    ));
}
