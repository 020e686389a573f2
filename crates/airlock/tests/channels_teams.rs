//! Microsoft Teams end to end: a real `airlock serve` holding a real agent request, its Teams
//! channel talking to the fake Entra + Bot Framework of airlock-channels' tests, activities
//! POSTed to `/callbacks/teams` with bearer tokens signed by the fake's test keys.
mod e2e;
mod support;

use e2e::fake_teams::{APP_ID, Fake, Mint, actions, assert_inert, card_of, shown};
use e2e::*;
use serde_json::Value;
use support::*;

const ALICE: &str = "6f1d2c3b-aaaa-4bbb-8ccc-123456789abc";
const MALLORY: &str = "7a7a7a7a-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const BOB: &str = "0b0b0b0b-1111-4222-8333-444444444444";
const EVE: &str = "e5e5e5e5-9999-4999-8999-999999999999";

fn channel(fake: &Fake) -> String {
    format!(
        "[channels.teams]\napp_id = \"{APP_ID}\"\napp_password = \"env:TEAMS_PASSWORD\"\ntoken_url = \"{}\"\nopenid_url = \"{}\"\n\n",
        fake.token_url(),
        fake.openid_url()
    )
}

async fn post(gw: &Gateway, fake: &Fake, activity: &Value, how: Mint) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/teams", gw.control))
        .header("content-type", "application/json")
        .body(activity.to_string());
    if let Some(b) = fake.bearer(activity, how) {
        r = r.header("authorization", format!("Bearer {b}"));
    }
    r.send().await.unwrap()
}

/// The card sent to `aad`'s conversation: (activity id, activity).
async fn card_for(fake: &mut Fake, aad: &str) -> (String, Value) {
    let conv = Fake::conversation_of(aad);
    let is_card = |(c, a): &(String, Value)| *c == conv && a["attachments"].is_array();
    fake.wait_until("the card", |f| f.posts().iter().any(is_card)).await;
    let (_, a) = fake.posts().into_iter().find(is_card).unwrap();
    (a["id"].as_str().unwrap().to_string(), a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_presses_authenticated_by_the_bot_framework_decide() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let people = format!(
        "[people.alice]\nroles = [\"owner\"]\nteams = \"{ALICE}\"\n\n[people.mallory]\nroles = [\"intern\"]\nteams = \"{MALLORY}\"\n\n\
         [people.bob]\nroles = [\"owner\"]\nteams = \"{BOB}\"\n\n"
    );
    let gw = gateway(&up, &people, &channel(&fake), MAIL_RULE);
    // Alice and Mallory wrote to the bot; Bob never did.
    for who in [ALICE, MALLORY] {
        let r = post(&gw, &fake, &fake.hello(who), Mint::Valid).await;
        assert_eq!(r.status(), 200);
    }
    fake.wait_until("two greetings", |f| f.posts().len() == 2).await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (card_id, card) = card_for(&mut fake, ALICE).await;
    assert_inert(&card);
    assert!(shown(card_of(&card)).contains("sending mail needs a human"));
    let t = tokens_for(&id, actions(card_of(&card)).into_iter().map(|(_, t)| t).collect());

    let alice = fake.press(ALICE, &card_id, &t.approve);
    for how in [
        Mint::Unsigned,
        Mint::Expired,
        Mint::WrongAudience,
        Mint::WrongIssuer,
        Mint::UnknownKey,
        Mint::ServiceUrlMismatch,
    ] {
        assert_eq!(post(&gw, &fake, &alice, how).await.status(), 401, "{how:?}");
    }
    // Authentic, but a stranger, and someone without the role: told so, nothing counts.
    for (who, why) in [(EVE, "not configured as an approver"), (MALLORY, "changed nothing")] {
        let r = post(&gw, &fake, &fake.press(who, &card_id, &t.approve), Mint::Valid).await;
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["type"], "application/vnd.microsoft.activity.message", "{answer}");
        assert!(answer["value"].as_str().unwrap().contains(why), "{answer}");
    }
    assert!(!up.contacted() && !agent.is_finished());

    let r = post(&gw, &fake, &alice, Mint::Valid).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["type"], "application/vnd.microsoft.card.adaptive", "{answer}");
    assert!(answer["value"].get("actions").is_none());
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body, MAIL.as_bytes());
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    fake.wait_until("the card closed", |f| {
        f.puts()
            .iter()
            .any(|(_, a, act)| *a == card_id && shown(card_of(act)).contains("Approved by alice"))
    })
    .await;
    // Only Alice got a card: Mallory lacks the role, Bob never wrote to the bot.
    let cards: Vec<String> = fake
        .posts()
        .into_iter()
        .filter(|(_, a)| a["attachments"].is_array())
        .map(|(c, _)| c)
        .collect();
    assert_eq!(cards, vec![Fake::conversation_of(ALICE)]);
    // Replayed: decided once, forwarded once.
    let r = post(&gw, &fake, &alice, Mint::Valid).await;
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["value"].as_str().unwrap().contains("already decided"),
        "{answer}"
    );
    assert_eq!(up.requests().len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_deny_refuses_the_request() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let people = format!("[people.alice]\nroles = [\"owner\"]\nteams = \"{ALICE}\"\n\n");
    let gw = gateway(&up, &people, &channel(&fake), MAIL_RULE);
    assert_eq!(post(&gw, &fake, &fake.install(ALICE), Mint::Valid).await.status(), 200);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (card_id, card) = card_for(&mut fake, ALICE).await;
    let t = tokens_for(&id, actions(card_of(&card)).into_iter().map(|(_, t)| t).collect());
    // An older client: Action.Submit arrives as a message, answered with a reply in the chat.
    let r = post(&gw, &fake, &fake.submit(ALICE, &card_id, &t.deny), Mint::Valid).await;
    assert_eq!(r.status(), 200);
    assert_denied(agent, &up, "alice").await;
    fake.wait_until("the reply and the closed card", |f| {
        f.posts().iter().any(|(_, a)| a["replyToId"] == card_id.as_str())
            && f.puts()
                .iter()
                .any(|(_, a, act)| *a == card_id && shown(card_of(act)).contains("Denied by alice"))
    })
    .await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// Quorum counts people across platforms: one Teams press and one Webex action approve a
/// request that needs two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_counts_a_teams_press_and_a_webex_action_as_two_people() {
    use e2e::fake_webex;
    let mut teams = Fake::start().await;
    let mut webex = fake_webex::Fake::start().await;
    let up = upstream(true).await;
    let bob_webex = "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ib2I";
    let people = format!(
        "[people.alice]\nroles = [\"senior\"]\nteams = \"{ALICE}\"\n\n\
         [people.bob]\nroles = [\"senior\"]\nwebex = \"{bob_webex}\"\n\n"
    );
    let channels = format!(
        "{}[channels.webex]\nbot_token = \"env:WEBEX_BOT\"\nwebhook_secret = \"env:WEBEX_SECRET\"\napi_url = \"{}\"\n\n",
        channel(&teams),
        webex.api_base()
    );
    let gw = gateway(&up, &people, &channels, DEPLOY_RULE);
    assert_eq!(post(&gw, &teams, &teams.hello(ALICE), Mint::Valid).await.status(), 200);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, "/deploy", "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (card_id, card) = card_for(&mut teams, ALICE).await;
    let tt = tokens_for(&id, actions(card_of(&card)).into_iter().map(|(_, t)| t).collect());
    webex.wait_until("the Webex card", |f| !f.posts().is_empty()).await;
    let wcard = webex.posts()[0].clone();
    let wt = tokens_for(&id, fake_webex::actions(&wcard).into_iter().map(|(_, t)| t).collect());

    let r = post(&gw, &teams, &teams.press(ALICE, &card_id, &tt.approve), Mint::Valid).await;
    let answer: Value = r.json().await.unwrap();
    assert!(
        shown(&answer["value"]).contains("waiting for more approvals"),
        "{answer}"
    );
    assert!(
        !up.contacted() && !agent.is_finished(),
        "one approval of two forwards nothing"
    );
    let bob = webex.press(bob_webex, &wt.approve, &wcard, 0, bob_webex);
    let r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/webex", gw.control))
        .header("content-type", "application/json")
        .header("X-Spark-Signature", fake_webex::sign(fake_webex::SECRET, &bob))
        .body(bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    assert!(teams.violations().is_empty() && webex.violations().is_empty());
}
