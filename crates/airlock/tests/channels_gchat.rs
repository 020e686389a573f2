//! Google Chat end to end: a real `airlock serve` holding a real agent request, its Google Chat
//! channel talking to the fake Chat API of airlock-channels' tests as a service account,
//! CARD_CLICKED events POSTed to `/callbacks/gchat` with bearer tokens signed by the fake's
//! test keys.
mod e2e;
mod support;

use e2e::fake_gchat::{Fake, Mint, PROJECT, SUBSCRIPTION, assert_inert, buttons, key_file, shown};
use e2e::*;
use serde_json::Value;
use support::*;

const ALICE: &str = "users/1234567890";
const MALLORY: &str = "users/2222222222";
const BOB: &str = "users/3333333333";
const EVE: &str = "users/9999999999";

fn start(up: &Upstream, fake: &Fake, people: &str) -> Gateway {
    start_with(up, fake, people, &format!("audience = \"{PROJECT}\""))
}

/// `mode`: `audience = …` (HTTP events) or `subscription = …` (Pub/Sub).
fn start_with(up: &Upstream, fake: &Fake, people: &str, mode: &str) -> Gateway {
    let channel = format!(
        "[channels.gchat]\nservice_account_key = \"env:GCHAT_SA_KEY\"\n{mode}\n\
         api_url = \"{}\"\ntoken_url = \"{}\"\njwks_url = \"{}\"\npubsub_url = \"{}\"\n\n",
        fake.api_base(),
        fake.token_url(),
        fake.jwks_url(),
        fake.pubsub_base()
    );
    let key = key_file();
    gateway_env(up, people, &channel, MAIL_RULE, &[("GCHAT_SA_KEY", &key)])
}

async fn post(gw: &Gateway, fake: &Fake, event: &Value, how: Mint) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/gchat", gw.control))
        .header("content-type", "application/json")
        .body(event.to_string());
    if let Some(b) = fake.bearer(how) {
        r = r.header("authorization", format!("Bearer {b}"));
    }
    r.send().await.unwrap()
}

/// The agent's request, held; the card it got and the card's tokens.
async fn hold(
    gw: &Gateway,
    up: &Upstream,
    fake: &mut Fake,
) -> (tokio::task::JoinHandle<reqwest::Response>, Value, Tokens) {
    let mut events = Events::open(gw).await;
    let agent = send(gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    fake.wait_until("the card", |f| !f.messages().is_empty()).await;
    let m = fake.messages()[0].clone();
    let t = tokens_for(&id, buttons(&m).into_iter().map(|(_, t)| t).collect());
    (agent, m, t)
}

async fn answer(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["actionResponse"]["type"], "NEW_MESSAGE", "{v}");
    v["text"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gchat_presses_signed_by_chat_decide_and_the_card_is_patched() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let people = format!(
        "[people.alice]\nroles = [\"owner\"]\ngchat = \"{ALICE}\"\n\n[people.mallory]\nroles = [\"intern\"]\ngchat = \"{MALLORY}\"\n\n\
         [people.bob]\nroles = [\"owner\"]\ngchat = \"{BOB}\"\n\n"
    );
    // Alice and Mallory added the app; Bob did not.
    fake.add_app(ALICE);
    fake.add_app(MALLORY);
    let gw = start(&up, &fake, &people);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    fake.wait_until("the card", |f| !f.messages().is_empty()).await;
    let m = fake.messages()[0].clone();
    assert_inert(&m);
    assert!(shown(&m).contains("sending mail needs a human"));
    let t = tokens_for(&id, buttons(&m).into_iter().map(|(_, t)| t).collect());

    let alice = fake.press(ALICE, &m, &t.approve);
    for how in [
        Mint::Unsigned,
        Mint::Expired,
        Mint::WrongAudience,
        Mint::WrongIssuer,
        Mint::UnknownKey,
    ] {
        assert_eq!(post(&gw, &fake, &alice, how).await.status(), 401, "{how:?}");
    }
    let text = answer(post(&gw, &fake, &fake.press(EVE, &m, &t.approve), Mint::Valid).await).await;
    assert!(text.contains("not configured as an approver"), "{text}");
    let text = answer(post(&gw, &fake, &fake.press(MALLORY, &m, &t.approve), Mint::Valid).await).await;
    assert!(text.contains("changed nothing"), "{text}");
    assert!(!up.contacted() && !agent.is_finished());

    let text = answer(post(&gw, &fake, &alice, Mint::Valid).await).await;
    assert!(text.contains("Your vote counted"), "{text}");
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body, MAIL.as_bytes());
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    fake.wait_until("the card patched", |f| {
        f.patches().iter().any(|(n, p)| {
            *n == m["name"].as_str().unwrap() && shown(p).contains("Approved by alice") && buttons(p).is_empty()
        })
    })
    .await;
    // Only Alice got a card: Mallory lacks the role, Bob has no DM with the app.
    assert_eq!(fake.messages().len(), 1);
    let text = answer(post(&gw, &fake, &alice, Mint::Valid).await).await;
    assert!(text.contains("already decided"), "{text}");
    assert_eq!(up.requests().len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gchat_deny_refuses_the_request() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    fake.add_app(ALICE);
    let gw = start(
        &up,
        &fake,
        &format!("[people.alice]\nroles = [\"owner\"]\ngchat = \"{ALICE}\"\n\n"),
    );
    let (agent, m, t) = hold(&gw, &up, &mut fake).await;
    answer(post(&gw, &fake, &fake.press(ALICE, &m, &t.deny), Mint::Valid).await).await;
    assert_denied(agent, &up, "alice").await;
    fake.wait_until("the card patched", |f| {
        f.patches().iter().any(|(_, p)| shown(p).contains("Denied by alice"))
    })
    .await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// No public URL: events pulled from Cloud Pub/Sub, acknowledged once applied, answered with a
/// message in the DM; `/callbacks/gchat` takes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gchat_presses_pulled_from_pub_sub_decide() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let space = fake.add_app(ALICE);
    let people = format!("[people.alice]\nroles = [\"owner\"]\ngchat = \"{ALICE}\"\n\n");
    let gw = start_with(&up, &fake, &people, &format!("subscription = \"{SUBSCRIPTION}\""));
    let (agent, m, t) = hold(&gw, &up, &mut fake).await;
    let r = post(&gw, &fake, &fake.press(ALICE, &m, &t.approve), Mint::Valid).await;
    assert_eq!(r.status(), 404, "no HTTP events without an audience");

    let eve = fake.publish(fake.press(EVE, &m, &t.approve));
    fake.wait_until("the stranger's event acknowledged", |f| f.acked().contains(&eve))
        .await;
    assert!(!up.contacted() && !agent.is_finished());
    let alice = fake.publish(fake.press(ALICE, &m, &t.approve));
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.last().body, MAIL.as_bytes());
    fake.wait_until("acknowledged and answered", |f| {
        f.acked().contains(&alice)
            && f.messages().iter().any(|x| {
                x["space"]["name"] == space.as_str()
                    && x["text"].as_str().is_some_and(|t| t.contains("Your vote counted"))
            })
    })
    .await;
    assert!(
        fake.messages()
            .iter()
            .any(|x| x["text"].as_str().is_some_and(|t| t.contains("not configured")))
    );
    assert_eq!(up.requests().len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
