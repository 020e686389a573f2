//! Discord end to end: a real `airlock serve` holding a real agent request, its Discord
//! channel talking to the fake Discord of airlock-channels' tests, clicks coming back over the
//! Gateway WebSocket or signed to the HTTP interactions endpoint, as Discord sends them.
mod e2e;
mod support;

use std::time::Duration;

use e2e::fake_discord::cards::{assert_inert, buttons_of, rendered};
use e2e::fake_discord::{Event, Fake};
use e2e::signing::now_secs;
use e2e::*;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use support::*;

const ALICE: &str = "80351110224678912";
const MALLORY: &str = "80351110224678913";
const EVE: &str = "99999999999999999";

fn people() -> String {
    format!(
        "[people.alice]\nroles = [\"owner\"]\ndiscord = \"{ALICE}\"\n\n\
         [people.mallory]\nroles = [\"intern\"]\ndiscord = \"{MALLORY}\"\n\n"
    )
}

/// The card sent to `user`'s DM: its "channel/message" reference and body.
async fn card_for(fake: &mut Fake, user: &str, gw: &Gateway) -> (String, Value) {
    let dm = Fake::dm_of(user);
    let sent = fake
        .try_wait_until(|f| f.message_refs().iter().any(|r| r.starts_with(&format!("{dm}/"))))
        .await;
    assert!(
        sent,
        "no card for {user}; DMs opened {:?}, messages {:?}, violations {:?}; the gateway's log:\n{}",
        fake.calls("/users/@me/channels"),
        fake.message_refs(),
        fake.violations(),
        gw.logs()
    );
    let r = fake
        .message_refs()
        .into_iter()
        .find(|r| r.starts_with(&format!("{dm}/")))
        .unwrap();
    let msg = fake.message(&r).unwrap();
    (r, msg)
}

fn tokens(id: &str, msg: &Value) -> Tokens {
    let ids = buttons_of(msg)
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap().to_string())
        .collect();
    tokens_for(id, ids)
}

/// A press over the Gateway; returns the ephemeral follow-up the clicker got.
async fn press(fake: &mut Fake, user: &str, token: &str, msg: &str) -> Value {
    let id = fake.press(user, token, msg);
    fake.wait_for(Event::FollowedUp(id.clone())).await;
    let i = fake.interaction(&id).unwrap();
    assert_eq!(i.answer, Some(json!({"type": 6})), "deferred inside the window");
    let f = i.followups[0].clone();
    assert_eq!(f["flags"], 64, "{f}");
    assert_inert(&f);
    f
}

async fn assert_forwarded(agent: tokio::task::JoinHandle<reqwest::Response>, up: &Upstream) {
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body, MAIL.as_bytes());
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_gateway_only_the_approver_decides_and_the_card_closes() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let channel = format!(
        "[channels.discord]\nbot_token = \"env:DISCORD_BOT\"\napi_url = \"{}\"\n\n",
        fake.api_base()
    );
    let gw = gateway(&up, &people(), &channel, MAIL_RULE);
    fake.wait_for(Event::Ready(1)).await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;

    let (msg, card) = card_for(&mut fake, ALICE, &gw).await;
    assert_inert(&card);
    let t = tokens(&id, &card);
    assert!(t.grant.is_some(), "the rule offers a 15 min grant");
    assert!(rendered(&card).contains("sending mail needs a human"));

    // Mallory holds no approver role; Eve is nobody; a forged button is refused even from
    // Alice. None of it changes anything.
    let f = press(&mut fake, MALLORY, &t.approve, &msg).await;
    assert!(rendered(&f).contains("changed nothing"), "{f}");
    let f = press(&mut fake, EVE, &t.approve, &msg).await;
    assert!(rendered(&f).contains("not configured as an approver"), "{f}");
    let forged = t.deny.replacen(".d.", ".a.", 1);
    let f = press(&mut fake, ALICE, &forged, &msg).await;
    assert!(rendered(&f).contains("refused"), "{f}");
    assert!(!up.contacted() && !agent.is_finished());

    let f = press(&mut fake, ALICE, &t.approve, &msg).await;
    assert!(!rendered(&f).contains("refused"), "{f}");
    assert_forwarded(agent, &up).await;
    fake.wait_until("the card closed", |f| {
        f.message(&msg)
            .is_some_and(|m| buttons_of(&m).is_empty() && rendered(&m).contains("Approved by alice"))
    })
    .await;
    assert_inert(&fake.message(&msg).unwrap());

    // Replayed: the request was decided and forwarded once.
    let f = press(&mut fake, ALICE, &t.approve, &msg).await;
    assert!(rendered(&f).contains("already decided"), "{f}");
    assert_eq!(up.requests().len(), 1);
    // Only Alice got a card.
    assert_eq!(fake.calls("/users/@me/channels"), vec![json!({"recipient_id": ALICE})]);
    assert_eq!(fake.calls("create message").len(), 1);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    for line in gw.logs().lines() {
        assert_no_credential("the gateway's log", line);
    }
}

fn signed_post(gw: &Gateway, body: &str, ts: u64, key: &SigningKey) -> reqwest::RequestBuilder {
    let sig = key.sign(format!("{ts}{body}").as_bytes());
    reqwest::Client::new()
        .post(format!("http://{}/callbacks/discord", gw.control))
        .header("content-type", "application/json")
        .header("X-Signature-Ed25519", hex::encode(sig.to_bytes()))
        .header("X-Signature-Timestamp", ts.to_string())
        .body(body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_http_interactions_must_be_signed_fresh_and_from_a_person() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let key = SigningKey::from_bytes(&[9; 32]);
    let other = SigningKey::from_bytes(&[10; 32]);
    let channel = format!(
        "[channels.discord]\nbot_token = \"env:DISCORD_BOT\"\ngateway = false\npublic_key = \"{}\"\napi_url = \"{}\"\n\n",
        hex::encode(key.verifying_key().as_bytes()),
        fake.api_base()
    );
    let gw = gateway(&up, &people(), &channel, MAIL_RULE);
    let now = now_secs();
    // The endpoint check Discord runs when the URL is saved: a signed PING, and a bad one.
    let ping = r#"{"type":1,"id":"1","application_id":"1000000000000000001","token":"t","version":1}"#;
    let r = signed_post(&gw, ping, now, &key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"type": 1}));
    let r = signed_post(&gw, ping, now, &other).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (msg, card) = card_for(&mut fake, ALICE, &gw).await;
    let t = tokens(&id, &card);
    let body = |user: &str, token: &str| fake.new_press(user, token, &msg, Duration::ZERO).to_string();

    let alice = body(ALICE, &t.deny);
    let r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/discord", gw.control))
        .header("content-type", "application/json")
        .body(alice.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "unsigned");
    assert_eq!(
        signed_post(&gw, &alice, now, &other).send().await.unwrap().status(),
        401
    );
    let r = signed_post(&gw, &alice, now - 600, &key).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("replay window"));
    let tampered = alice.replace(ALICE, MALLORY);
    let sig = key.sign(format!("{now}{alice}").as_bytes());
    let r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/discord", gw.control))
        .header("X-Signature-Ed25519", hex::encode(sig.to_bytes()))
        .header("X-Signature-Timestamp", now.to_string())
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a signature over another body");

    // Authentic, but from a Discord user who is not in [people]: told so, alone.
    let r = signed_post(&gw, &body(EVE, &t.approve), now, &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        (answer["type"].clone(), answer["data"]["flags"].clone()),
        (json!(4), json!(64))
    );
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("not configured as an approver")
    );
    assert!(!up.contacted() && !agent.is_finished());

    let r = signed_post(&gw, &alice, now, &key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["data"]["flags"], 64, "{answer}");
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["airlock"]["reason"].as_str().unwrap().contains("denied by alice"),
        "{body}"
    );
    assert!(!up.contacted());
    fake.wait_until("the card closed", |f| {
        f.message(&msg)
            .is_some_and(|m| buttons_of(&m).is_empty() && rendered(&m).contains("Denied by alice"))
    })
    .await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert!(fake.calls("/gateway/bot").is_empty(), "gateway = false: no reader");
}

/// The replica that logged taking the feed lock (a log line: nothing to await).
fn feed_reader(c: &support::replicas::Cluster) -> Option<usize> {
    (0..c.len()).find(|&i| c[i].logs().contains("now reads the platforms' feeds"))
}

/// The replica holding the Gateway reader is killed (SIGKILL); Alice presses while no reader
/// is connected; the survivor takes the feed, resumes the session the dead reader stored, gets
/// the press replayed, and the approval is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_gateway_reader_fails_over_resumes_and_a_click_pressed_meanwhile_counts_once() {
    let mut fake = Fake::start().await;
    let up = upstream(true).await;
    let config = format!(
        "[[agents]]\nname = \"mailbot\"\nsecrets = [\"gmail\"]\n\n[secrets.gmail]\nhosts = [\"localhost\"]\n\
         header = \"Authorization\"\nformat = \"Bearer {{secret}}\"\nplaceholder = \"airlock-gmail\"\n\n\
         [approvals]\nmax_body = 1048576\n\n{}[channels.discord]\nbot_token = \"env:DISCORD_BOT\"\napi_url = \"{}\"\n\n{MAIL_RULE}",
        people(),
        fake.api_base()
    );
    let mut c = support::replicas::Cluster::start(support::replicas::Options {
        replicas: 2,
        upstreams: &[&up],
        config: &config,
        secrets: &[("gmail", REAL)],
        agents: &["mailbot"],
        env: ENV,
        store: "lease = \"2s\"",
        ..Default::default()
    })
    .await;
    // One replica reads the Gateway.
    fake.wait_for(Event::Ready(1)).await;
    let mut leader = None;
    for _ in 0..100 {
        leader = feed_reader(&c);
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // a log line: nothing to await
    }
    let leader = leader.expect("one replica reads the feed");
    let holder = 1 - leader;
    let agent = send(&c[holder], up.port, MAIL_PATH, "application/json", MAIL.into());
    let (msg, card) = card_for(&mut fake, ALICE, &c[holder]).await;
    let id = buttons_of(&card)[0]["custom_id"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let approval = tokens(&id, &card);
    let (session, _) = fake.session();

    // The reader dies without a word. Until the press is dispatched, a reader that connects
    // is not greeted: the press goes out while no reader holds the session.
    fake.greet(false);
    c.kill9(leader);
    fake.wait_for(Event::Closed(1)).await;
    assert!(!fake.live());
    let press = fake.press(ALICE, &approval.approve, &msg);
    fake.greet(true);
    // The survivor resumes (no second Identify) and the press is replayed to it.
    fake.wait_for(Event::Resumed(2)).await;
    assert_eq!(fake.session().0, session, "the same session, resumed");
    assert_eq!(fake.calls("/gateway/bot").len(), 1, "resumed on the stored URL");
    assert_forwarded(agent, &up).await;
    fake.wait_until("the card closed", |f| {
        f.message(&msg)
            .is_some_and(|m| buttons_of(&m).is_empty() && rendered(&m).contains("Approved by alice"))
    })
    .await;
    fake.wait_for(Event::FollowedUp(press.clone())).await;
    let i = fake.interaction(&press).unwrap();
    assert_eq!(i.answer, Some(json!({"type": 6})));
    assert!(!rendered(&i.followups[0]).contains("refused"), "{:?}", i.followups);
    assert_eq!(fake.connections(), 2, "one reader at a time");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    c.replicas.remove(leader);
    let audit = c.stop_and_verify(REAL);
    assert_eq!(up.requests().len(), 1, "the held bytes reached the upstream once");
    let votes: Vec<&Value> = audit
        .iter()
        .filter(|r| r["kind"] == "vote" && r["detail"]["approval"] == id.as_str())
        .collect();
    assert_eq!(votes.len(), 1, "one vote: {votes:?}");
    assert_eq!(votes[0]["decision"], "approve");
}
