//! Webex end to end: a real `airlock serve` holding a real agent request, its Webex channel
//! talking to the fake Webex of airlock-channels' tests, clicks coming back as signed
//! `attachmentActions` webhooks whose action is fetched from the (fake) API.
mod e2e;
mod support;

use e2e::fake_webex::{Fake, SECRET, actions, assert_inert, shown, sign};
use e2e::*;
use serde_json::Value;
use support::*;

const ALICE: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ";
const MALLORY: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9tYWxsb3J5";
const EVE: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ldmU";
const BOB: &str = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ib2I";

async fn post(gw: &Gateway, body: &str, signature: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/webex", gw.control))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        r = r.header("X-Spark-Signature", s);
    }
    r.send().await.unwrap()
}

async fn reply_text(r: reqwest::Response) -> (bool, String) {
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (v["ok"].as_bool().unwrap(), v["text"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webex_signed_actions_from_the_api_decide_and_the_thread_is_told() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let people = format!(
        "[people.alice]\nroles = [\"owner\"]\nwebex = \"{ALICE}\"\n\n[people.mallory]\nroles = [\"intern\"]\nwebex = \"{MALLORY}\"\n\n"
    );
    let channel = format!(
        "[channels.webex]\nbot_token = \"env:WEBEX_BOT\"\nwebhook_secret = \"env:WEBEX_SECRET\"\napi_url = \"{}\"\n\n",
        fake.api_base()
    );
    let gw = gateway(&up, &people, &channel, MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    fake.wait_until("the card", |f| !f.posts().is_empty()).await;
    let card = fake.posts()[0].clone();
    assert_eq!(card["toPersonId"], ALICE, "only the approver gets a card");
    assert_inert(&card);
    assert!(shown(&card).contains("sending mail needs a human"));
    let t = tokens_for(&id, actions(&card).into_iter().map(|(_, t)| t).collect());

    let alice = fake.press(ALICE, &t.approve, &card, 0, ALICE);
    assert_eq!(post(&gw, &alice, None).await.status(), 401, "unsigned");
    assert_eq!(
        post(&gw, &alice, Some(&sign("not-the-secret", &alice))).await.status(),
        401
    );
    // The envelope says Alice, the API says Eve pressed: Eve is nobody here.
    let eve = fake.press(EVE, &t.approve, &card, 0, ALICE);
    let (ok, text) = reply_text(post(&gw, &eve, Some(&sign(SECRET, &eve))).await).await;
    assert!(!ok && text.contains("not configured as an approver"), "{text}");
    let mallory = fake.press(MALLORY, &t.approve, &card, 0, MALLORY);
    let (ok, text) = reply_text(post(&gw, &mallory, Some(&sign(SECRET, &mallory))).await).await;
    assert!(!ok && text.contains("changed nothing"), "{text}");
    let stale = fake.press(ALICE, &t.approve, &card, 900, ALICE);
    let r = post(&gw, &stale, Some(&sign(SECRET, &stale))).await;
    assert_eq!(r.status(), 401, "an action from 15 minutes ago is a replay");
    assert!(r.text().await.unwrap().contains("replay window"));
    assert!(!up.contacted() && !agent.is_finished());

    let (ok, text) = reply_text(post(&gw, &alice, Some(&sign(SECRET, &alice))).await).await;
    assert!(ok, "{text}");
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body, MAIL.as_bytes());
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    fake.wait_until("the closing reply", |f| {
        f.posts().iter().any(|p| {
            p["parentId"] == card["id"] && p["markdown"].as_str().is_some_and(|m| m.contains("Approved by alice"))
        })
    })
    .await;
    // Replayed: decided once, forwarded once.
    let (ok, text) = reply_text(post(&gw, &alice, Some(&sign(SECRET, &alice))).await).await;
    assert!(!ok && text.contains("already decided"), "{text}");
    assert_eq!(up.requests().len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// Quorum counts people, whatever platform each of them answers on: one Discord press and
/// one Webex action approve a request that needs two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_counts_a_discord_press_and_a_webex_action_as_two_people() {
    use e2e::fake_discord::{self, cards::buttons_of};
    let mut webex = Fake::start().await;
    let mut discord = fake_discord::Fake::start().await;
    let up = upstream(true).await;
    let alice_discord = "80351110224678912";
    let people = format!(
        "[people.alice]\nroles = [\"senior\"]\ndiscord = \"{alice_discord}\"\n\n\
         [people.bob]\nroles = [\"senior\"]\nwebex = \"{BOB}\"\n\n"
    );
    let channels = format!(
        "[channels.webex]\nbot_token = \"env:WEBEX_BOT\"\nwebhook_secret = \"env:WEBEX_SECRET\"\napi_url = \"{}\"\n\n\
         [channels.discord]\nbot_token = \"env:DISCORD_BOT\"\napi_url = \"{}\"\n\n",
        webex.api_base(),
        discord.api_base()
    );
    let gw = gateway(&up, &people, &channels, DEPLOY_RULE);
    discord.wait_for(fake_discord::Event::Ready(1)).await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, "/deploy", "application/json", MAIL.into());
    let id = events.next("pending").await;
    webex.wait_until("the Webex card", |f| !f.posts().is_empty()).await;
    let wcard = webex.posts()[0].clone();
    let wt = tokens_for(&id, actions(&wcard).into_iter().map(|(_, t)| t).collect());
    let dm = fake_discord::Fake::dm_of(alice_discord);
    discord
        .wait_until("the Discord card", |f| {
            f.message_refs().iter().any(|r| r.starts_with(&dm))
        })
        .await;
    let msg = discord.message_refs().into_iter().find(|r| r.starts_with(&dm)).unwrap();
    let dcard = discord.message(&msg).unwrap();
    let ids = buttons_of(&dcard)
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap().to_string())
        .collect();
    let dt = tokens_for(&id, ids);

    // Alice on Discord: one of two.
    let pressed = discord.press(alice_discord, &dt.approve, &msg);
    discord.wait_for(fake_discord::Event::FollowedUp(pressed)).await;
    assert!(
        !up.contacted() && !agent.is_finished(),
        "one approval of two forwards nothing"
    );
    // Bob on Webex: two of two.
    let bob = webex.press(BOB, &wt.approve, &wcard, 0, BOB);
    let (ok, text) = reply_text(post(&gw, &bob, Some(&sign(SECRET, &bob))).await).await;
    assert!(ok, "{text}");
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    discord
        .wait_until("the Discord card closed", |f| {
            f.message(&msg).is_some_and(|m| buttons_of(&m).is_empty())
        })
        .await;
    assert!(webex.violations().is_empty() && discord.violations().is_empty());
}
