//! Discord channel against a local fake Discord that enforces the documented wire format
//! (REST, interaction callbacks and their 3-second window, the Gateway WebSocket).

mod fake_discord;
mod fake_slack;

use std::sync::Arc;
use std::time::Duration;

use airlock_channels::discord::{Discord, DiscordConfig, PublicKey, render};
use airlock_channels::memory::{Memory, Volatile};
use airlock_channels::token::{self, Decision};
use airlock_channels::{Buttons, CallbackError, Channel, Click, MessageRef, Reply, Status};
use airlock_vault::SecretBytes;
use ed25519_dalek::{Signer, SigningKey};
use fake_discord::cards::{assert_inert, assert_our_buttons, buttons_of, rendered};
use fake_discord::{APP_ID, BOT, Event, Fake};
use fake_slack::cards::{buttons, card, hostile_card};
use serde_json::json;
use tokio::sync::{mpsc, watch};

const ALICE: &str = "80351110224678912";
const NOW: u64 = 1_800_000_000;

/// Buttons carrying real signed tokens (the reader only takes presses on token-shaped ids).
fn signed_buttons() -> Buttons {
    let (key, digest) = (b"button key".as_slice(), card().digest);
    let t = |d| token::sign(key, "AbCdEfGhIjKl", &digest, d, 1_900_000_000);
    Buttons {
        approve: t(Decision::Approve),
        deny: t(Decision::Deny),
        grant: None,
    }
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn public_key() -> PublicKey {
    PublicKey::from_hex(&hex::encode(signing_key().verifying_key().as_bytes())).unwrap()
}

fn discord(fake: &Fake, gateway: bool) -> Discord {
    Discord::new(DiscordConfig {
        api_base: fake.api_base(),
        bot_token: SecretBytes::new(BOT.as_bytes().to_vec()),
        gateway,
        public_key: Some(public_key()),
        memory: Arc::new(Volatile::new()),
    })
}

fn signed(body: &str, ts: u64, key: &SigningKey) -> http::HeaderMap {
    let sig = key.sign(format!("{ts}{body}").as_bytes());
    let mut h = http::HeaderMap::new();
    h.insert("x-signature-ed25519", hex::encode(sig.to_bytes()).parse().unwrap());
    h.insert("x-signature-timestamp", ts.to_string().parse().unwrap());
    h
}

#[tokio::test]
async fn send_opens_a_dm_posts_the_card_and_update_closes_it() {
    let fake = Fake::start().await;
    let d = discord(&fake, false);
    assert_eq!(d.name(), "discord");
    let (c, b) = (card(), buttons(true));
    let msg = d.send(&c, &b, ALICE).await.unwrap();
    let dm = Fake::dm_of(ALICE);
    assert!(msg.0.starts_with(&format!("{dm}/")), "{msg:?}");
    assert_eq!(fake.calls("/users/@me/channels"), vec![json!({"recipient_id": ALICE})]);
    let sent = fake.message(&msg.0).unwrap();
    assert_our_buttons(&sent, &b, "Approve for 30 min");
    assert_inert(&sent);
    let shown = rendered(&sent);
    for want in [
        "Send email",
        "POST https://api.mail.example/v3/send",
        "build-bot",
        "9f86d081884c",
        "ceo@example.com",
        "dry_run = false",
        "outbound email needs a human",
        "2023-11-14 22:28 UTC",
    ] {
        assert!(shown.contains(want), "{want} missing from {shown}");
    }
    assert_eq!(sent["embeds"][0]["color"], 0xF0B232);

    let approved = Status::Approved {
        by: vec!["alice".into(), "bob".into()],
        at_ms: 1_700_000_580_000,
        grant_secs: None,
    };
    d.update(&c, &approved, Some(&b), &msg).await.unwrap();
    let now = fake.message(&msg.0).unwrap();
    assert!(buttons_of(&now).is_empty(), "a closed card keeps no buttons: {now}");
    assert!(
        rendered(&now).contains("Approved by alice, bob · 22:23 UTC"),
        "{}",
        rendered(&now)
    );
    assert_eq!(now["embeds"][0]["color"], 0x23A55A);
    assert_inert(&now);
    // A user name instead of an id is refused before any call.
    assert!(d.send(&c, &b, "alice#1234").await.is_err());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn an_open_card_keeps_its_buttons_and_closed_ones_lose_them() {
    let fake = Fake::start().await;
    let d = discord(&fake, false);
    let mut c = card();
    c.rules[0].quorum = 2;
    let b = buttons(false);
    let msg = d.send(&c, &b, ALICE).await.unwrap();
    let partial = Status::Pending {
        approved_by: vec!["alice".into()],
    };
    d.update(&c, &partial, Some(&b), &msg).await.unwrap();
    let now = fake.message(&msg.0).unwrap();
    assert_our_buttons(&now, &b, "");
    assert!(rendered(&now).contains("Approved so far by alice — 1 of 2 approvals"));
    // Unknown buttons after a restart: the open card is left as it was sent.
    d.update(&c, &partial, None, &msg).await.unwrap();
    assert_eq!(fake.calls("edit message").len(), 1);
    for (status, line) in [
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
        (
            Status::Failed {
                reason: "store down".into(),
                at_ms: 0,
            },
            "Refused by airlock: store down",
        ),
    ] {
        let m = render::message(&c, &status, Some(&b));
        assert!(buttons_of(&m).is_empty(), "{status:?}");
        assert!(rendered(&m).contains(line), "{line}: {}", rendered(&m));
    }
    assert!(
        d.update(&c, &partial, Some(&b), &MessageRef("1/x".into()))
            .await
            .is_err()
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn hostile_request_renders_inert_with_only_our_buttons_and_within_limits() {
    let fake = Fake::start().await;
    let d = discord(&fake, false);
    let mut c = hostile_card();
    let discord_markup = "@everyone @here <@80351110224678912> <@&1> <#1> <:pwn:1> <t:0:R> \
                          [Approve](https://evil.example) **bold** __u__ ~~s~~ ||spoiler|| # Heading\n> quote\n-# small";
    c.agent = format!("{discord_markup} agent\u{202E}");
    c.body.text = format!("{discord_markup}\n{}", c.body.text);
    c.summary[0].1 = format!("`{discord_markup}`");
    c.headers.push(("x-mention".into(), "@everyone".into()));
    let b = buttons(true);
    let msg = d.send(&c, &b, ALICE).await.unwrap();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let sent = fake.message(&msg.0).unwrap();
    assert_our_buttons(&sent, &b, "Approve for 30 min");
    assert_inert(&sent);
    let shown = rendered(&sent);
    // Neutralised, still visible to the approver.
    for want in [
        "@everyone",
        "<@80351110224678912>",
        "[Approve](https://evil.example)",
        "<U+202E>",
        "<U+200B>",
    ] {
        assert!(shown.contains(want), "{want} missing");
    }
    assert!(shown.contains("more bytes — full request on the dashboard"));
    assert!(shown.contains("more parameters — full request on the dashboard"));
    assert!(shown.contains("more lines — full request on the dashboard"));
    assert!(shown.contains(&format!(
        "``` shown as {}",
        airlock_channels::slack::render::FENCE_STANDIN
    )));
    let description = sent["embeds"][0]["description"].as_str().unwrap();
    assert!(description.starts_with("```\n"));
    assert!(description.lines().count() <= 35, "{description}");
    // The approve/deny/grant buttons are ours alone: no label or custom_id from the body.
    assert_eq!(buttons_of(&sent).len(), 3);
    // Closed: still inert, no buttons.
    let closed = render::message(&c, &Status::Withdrawn { at_ms: 0 }, Some(&b));
    assert!(buttons_of(&closed).is_empty());
    assert_inert(&closed);
    assert!(fake_discord::validate_message(&closed).is_empty());
}

#[test]
fn http_interactions_are_signed_fresh_and_answered_in_the_response() {
    let d = Discord::new(DiscordConfig {
        api_base: "http://127.0.0.1:9/api/v10".into(),
        bot_token: SecretBytes::new(BOT.as_bytes().to_vec()),
        gateway: false,
        public_key: Some(public_key()),
        memory: Arc::new(Volatile::new()),
    });
    let key = signing_key();
    // Discord's endpoint check: a signed PING gets a PONG.
    let ping = r#"{"type":1,"id":"1","application_id":"1000000000000000001","token":"t","version":1}"#;
    assert_eq!(d.callback(&signed(ping, NOW, &key), ping.as_bytes(), NOW), Ok(None));
    assert_eq!(d.callback_answer(ping.as_bytes(), None), Some(json!({"type": 1})));
    // ... and a PING with a bad signature gets a 401 (Discord checks that too).
    let other = SigningKey::from_bytes(&[1; 32]);
    assert_eq!(
        d.callback(&signed(ping, NOW, &other), ping.as_bytes(), NOW),
        Err(CallbackError::BadSignature)
    );

    let token = signed_buttons().approve;
    let press = json!({
        "type": 3, "id": "1100000000000000001", "application_id": APP_ID, "token": "itok",
        "user": {"id": ALICE}, "data": {"custom_id": token, "component_type": 2},
        "message": {"id": "1300000000000000001", "channel_id": "1200000000000000001"},
    })
    .to_string();
    let click = d
        .callback(&signed(&press, NOW, &key), press.as_bytes(), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(
        (click.channel, click.user.as_str(), click.token.as_str()),
        ("discord", ALICE, token.as_str())
    );
    let reply = Reply {
        ok: false,
        text: "You are not configured as an approver <@1> @everyone".into(),
    };
    let answer = d.callback_answer(press.as_bytes(), Some(&reply)).unwrap();
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64, "only the clicker sees it");
    assert_eq!(answer["data"]["allowed_mentions"]["parse"], json!([]));
    assert_inert(&json!({"content": answer["data"]["content"], "allowed_mentions": {"parse": []}}));

    let h = signed(&press, NOW, &key);
    let mut unsigned = h.clone();
    unsigned.remove("x-signature-ed25519");
    assert!(matches!(
        d.callback(&unsigned, press.as_bytes(), NOW),
        Err(CallbackError::MissingHeader(_))
    ));
    assert_eq!(
        d.callback(&signed(&press, NOW, &other), press.as_bytes(), NOW),
        Err(CallbackError::BadSignature)
    );
    let tampered = press.replace(ALICE, "80351110224678913");
    assert_eq!(
        d.callback(&h, tampered.as_bytes(), NOW),
        Err(CallbackError::BadSignature)
    );
    assert_eq!(
        d.callback(&signed(&press, NOW - 600, &key), press.as_bytes(), NOW),
        Err(CallbackError::Stale)
    );
    // Without a public key the endpoint is off.
    let off = Discord::new(DiscordConfig {
        api_base: "http://127.0.0.1:9/api/v10".into(),
        bot_token: SecretBytes::new(BOT.as_bytes().to_vec()),
        gateway: true,
        public_key: None,
        memory: Arc::new(Volatile::new()),
    });
    assert_eq!(
        off.callback(&h, press.as_bytes(), NOW),
        Err(CallbackError::NotSupported)
    );
}

struct Reader {
    d: Arc<Discord>,
    clicks: mpsc::Receiver<Click>,
    stop: watch::Sender<bool>,
}

fn reader(fake: &Fake) -> Reader {
    let d = Arc::new(discord(fake, true));
    let (tx, clicks) = mpsc::channel(16);
    let (stop, rx) = watch::channel(false);
    d.clone().start(tx, rx);
    Reader { d, clicks, stop }
}

async fn next_click(r: &mut Reader) -> Click {
    tokio::time::timeout(Duration::from_secs(10), r.clicks.recv())
        .await
        .expect("a click in time")
        .expect("the reader is running")
}

#[tokio::test]
async fn gateway_answers_clicks_within_the_window_and_follows_up_ephemerally() {
    let mut fake = Fake::start().await;
    let mut r = reader(&fake);
    fake.wait_for(Event::Ready(1)).await;
    let b = signed_buttons();
    let id = fake.press(ALICE, &b.approve, "1200000000000000001/1300000000000000001");
    let click = next_click(&mut r).await;
    assert_eq!((click.user.as_str(), click.token.as_str()), (ALICE, b.approve.as_str()));
    // Deferred before it was handed over, inside the window.
    let i = fake.interaction(&id).unwrap();
    assert_eq!(i.answer, Some(json!({"type": 6})));
    let reply = Reply {
        ok: true,
        text: "Approved. **1 of 1**".into(),
    };
    r.d.acknowledge(&click, &reply).await.unwrap();
    let i = fake.interaction(&id).unwrap();
    assert_eq!(i.followups.len(), 1);
    assert_eq!(i.followups[0]["flags"], 64);
    assert_inert(&i.followups[0]);
    assert!(rendered(&i.followups[0]).contains("Approved. **1 of 1**"));

    // Buttons that are not ours, and other interactions, are left alone.
    let foreign = fake.press(ALICE, "some_other_bot:approve", "1/2");
    fake.dispatch(
        "INTERACTION_CREATE",
        json!({"type": 2, "id": "5", "data": {"name": "cmd"}}),
    );
    fake.dispatch("MESSAGE_CREATE", json!({"id": "6", "content": "hi"}));
    let id2 = fake.press(ALICE, &b.deny, "1/2");
    let click = next_click(&mut r).await;
    assert_eq!(click.token, b.deny, "the foreign press was skipped");
    fake.wait_for(Event::Answered(id2)).await;
    assert_eq!(fake.interaction(&foreign).unwrap().answer, None);

    // A press older than the window cannot be answered any more, but it is authentic: the
    // vote still reaches the hub.
    let old = fake.new_press(ALICE, &b.approve, "1/2", Duration::from_secs(4));
    let old_id = old["id"].as_str().unwrap().to_string();
    fake.dispatch("INTERACTION_CREATE", old);
    let click = next_click(&mut r).await;
    assert_eq!(click.ack["interaction_id"], old_id.as_str());
    assert_eq!(fake.interaction(&old_id).unwrap().answer, None);

    r.stop.send(true).unwrap();
    fake.wait_for(Event::Closed(1)).await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn gateway_resumes_after_a_drop_and_replays_what_it_missed_once() {
    let mut fake = Fake::start().await;
    let mut r = reader(&fake);
    fake.wait_for(Event::Ready(1)).await;
    let b = signed_buttons();
    fake.kill_gateway();
    fake.wait_for(Event::Closed(1)).await;
    // Pressed while the reader was away: replayed on Resume.
    let id = fake.press(ALICE, &b.approve, "1/2");
    fake.wait_for(Event::Resumed(2)).await;
    let click = next_click(&mut r).await;
    assert_eq!(click.ack["interaction_id"], id.as_str());
    assert_eq!(fake.calls("/gateway/bot").len(), 1, "resumed on resume_gateway_url");

    // Reconnect (op 7): resumed again; Invalid Session (op 9, not resumable): identified anew.
    fake.send_op(json!({"op": 7, "d": null}));
    fake.wait_for(Event::Resumed(3)).await;
    fake.send_op(json!({"op": 9, "d": false}));
    fake.wait_for(Event::Ready(4)).await;
    let id = fake.press(ALICE, &b.deny, "1/2");
    let click = next_click(&mut r).await;
    assert_eq!(click.ack["interaction_id"], id.as_str());
    // Each press reached the hub once.
    assert!(r.clicks.try_recv().is_err());
    r.stop.send(true).unwrap();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn gateway_heartbeats_and_drops_a_zombie_connection() {
    let mut fake = Fake::start().await;
    fake.set_heartbeat_ms(100);
    let r = reader(&fake);
    fake.wait_for(Event::Ready(1)).await;
    fake.wait_for(Event::Heartbeat(1)).await;
    fake.wait_for(Event::Heartbeat(1)).await;
    // Discord stops acknowledging: the reader gives the connection up and resumes.
    fake.ack_heartbeats(false);
    fake.wait_for(Event::Closed(1)).await;
    fake.ack_heartbeats(true);
    fake.wait_for(Event::Resumed(2)).await;
    r.stop.send(true).unwrap();
    fake.wait_for(Event::Closed(2)).await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let fake = Fake::start().await;
    let d = discord(&fake, false);
    let (c, b) = (card(), buttons(false));
    // A 429 with a short retry_after: retried after it.
    fake.rate_limit_next(1);
    let msg = d.send(&c, &b, ALICE).await.unwrap();
    // Buckets that report no requests remaining are not hit before they reset.
    fake.exhaust_buckets(true);
    let pending = Status::Pending {
        approved_by: vec!["alice".into()],
    };
    for _ in 0..3 {
        d.update(&c, &pending, Some(&b), &msg).await.unwrap();
    }
    assert_eq!(fake.calls("edit message").len(), 3);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    // A long 429 is reported, not slept through.
    fake.exhaust_buckets(false);
    fake.rate_limit_next(3);
    let e = d.send(&c, &b, ALICE).await.unwrap_err();
    assert!(matches!(e, airlock_channels::ChannelError::RateLimited { .. }), "{e}");
}

#[tokio::test]
async fn a_refused_token_stops_the_reader() {
    let mut fake = Fake::start().await;
    let d = Arc::new(Discord::new(DiscordConfig {
        api_base: fake.api_base(),
        bot_token: SecretBytes::new(b"not-the-token".to_vec()),
        gateway: true,
        public_key: None,
        memory: Arc::new(Volatile::new()),
    }));
    let (tx, mut clicks) = mpsc::channel(1);
    let (_stop, rx) = watch::channel(false);
    d.start(tx, rx);
    // The fake refuses /gateway/bot with 401: the reader gives up and drops its sender.
    let gone = tokio::time::timeout(Duration::from_secs(10), clicks.recv()).await;
    assert!(matches!(gone, Ok(None)), "the reader stopped");
    fake.wait_for(Event::Api("/gateway/bot".into())).await;
    assert_eq!(fake.connections(), 0);
}

/// A [`Volatile`] that reports every write, so a test awaits the reader's store writes.
struct Watched {
    mem: Volatile,
    writes: mpsc::UnboundedSender<(String, Option<serde_json::Value>)>,
}

impl Memory for Watched {
    fn get<'a>(&'a self, key: &'a str) -> airlock_channels::BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        self.mem.get(key)
    }
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> airlock_channels::BoxFuture<'a, Result<(), String>> {
        let _ = self.writes.send((key.to_string(), serde_json::from_slice(value).ok()));
        self.mem.put(key, value)
    }
    fn remove<'a>(&'a self, key: &'a str) -> airlock_channels::BoxFuture<'a, Result<(), String>> {
        let _ = self.writes.send((key.to_string(), None));
        self.mem.remove(key)
    }
}

const SESSION_KEY: &str = "discord/gateway-session";

fn reader_on(fake: &Fake, memory: Arc<dyn Memory>) -> Reader {
    let d = Arc::new(Discord::new(DiscordConfig {
        api_base: fake.api_base(),
        bot_token: SecretBytes::new(BOT.as_bytes().to_vec()),
        gateway: true,
        public_key: None,
        memory,
    }));
    let (tx, clicks) = mpsc::channel(16);
    let (stop, rx) = watch::channel(false);
    d.clone().start(tx, rx);
    Reader { d, clicks, stop }
}

/// Waits for the stored session to become `want` (`None`: removed).
async fn stored(
    writes: &mut mpsc::UnboundedReceiver<(String, Option<serde_json::Value>)>,
    want: Option<serde_json::Value>,
) {
    let wait = async {
        while let Some((k, v)) = writes.recv().await {
            if k == SESSION_KEY && v == want {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("the store never held {want:?}"));
}

#[tokio::test]
async fn the_next_reader_resumes_the_stored_session_and_gets_what_was_not_applied() {
    let mut fake = Fake::start().await;
    let (writes_tx, mut writes) = mpsc::unbounded_channel();
    let mem: Arc<dyn Memory> = Arc::new(Watched {
        mem: Volatile::new(),
        writes: writes_tx,
    });
    let b = signed_buttons();
    let url = fake.gateway_url();
    let at = |seq: u64| Some(json!({"session_id": "session-1", "resume_url": url, "seq": seq}));

    let mut a = reader_on(&fake, mem.clone());
    fake.wait_for(Event::Ready(1)).await;
    stored(&mut writes, at(1)).await;
    // Applied by the hub (the click dropped): the stored position moves past it.
    let p1 = fake.press(ALICE, &b.approve, "1/2");
    let c1 = next_click(&mut a).await;
    assert_eq!(c1.ack["interaction_id"], p1.as_str());
    drop(c1);
    stored(&mut writes, at(2)).await;
    // Handed over but not applied when the reader stops: the position stays below it.
    let p2 = fake.press(ALICE, &b.deny, "1/2");
    let c2 = next_click(&mut a).await;
    assert_eq!(c2.ack["interaction_id"], p2.as_str());
    a.stop.send(true).unwrap();
    fake.wait_for(Event::ClientClosed(1, Some(4000))).await;
    fake.wait_for(Event::Closed(1)).await;
    assert_eq!(fake.session().0, "session-1", "closed without ending the session");
    // Pressed while no reader is connected.
    assert!(!fake.live());
    let p3 = fake.press(ALICE, &b.approve, "1/3");

    // The next reader (another replica, same store) resumes: Discord replays p2 and p3.
    let mut next = reader_on(&fake, mem.clone());
    fake.wait_for(Event::Resumed(2)).await;
    let mut got = vec![];
    for _ in 0..2 {
        let c = next_click(&mut next).await;
        got.push(c.ack["interaction_id"].as_str().unwrap().to_string());
    }
    got.sort();
    let mut want = vec![p2.clone(), p3.clone()];
    want.sort();
    assert_eq!(got, want, "not p1: it was applied before the takeover");
    let p4 = fake.press(ALICE, &b.deny, "1/4");
    let c4 = next_click(&mut next).await;
    assert_eq!(c4.ack["interaction_id"], p4.as_str(), "each press once");
    assert_eq!(fake.calls("/gateway/bot").len(), 1, "resumed on the stored URL");
    drop(c2);
    next.stop.send(true).unwrap();
    fake.wait_for(Event::Closed(2)).await;

    // A stored session Discord no longer knows: Invalid Session (not resumable), the stored
    // one is forgotten, a fresh Identify, and the new session is stored.
    let gone = json!({"session_id": "gone", "resume_url": url, "seq": 1});
    mem.put(SESSION_KEY, gone.to_string().as_bytes()).await.unwrap();
    let c = reader_on(&fake, mem.clone());
    fake.wait_for(Event::InvalidSession(3)).await;
    stored(&mut writes, None).await;
    fake.wait_for(Event::Ready(4)).await;
    stored(
        &mut writes,
        Some(json!({"session_id": "session-4", "resume_url": url, "seq": 1})),
    )
    .await;
    c.stop.send(true).unwrap();
    fake.wait_for(Event::Closed(4)).await;

    // A stored resume URL that is not Discord's gateway never gets the token: identify afresh.
    let evil = json!({"session_id": "session-4", "resume_url": "ws://evil.example:9", "seq": 1});
    mem.put(SESSION_KEY, evil.to_string().as_bytes()).await.unwrap();
    let d = reader_on(&fake, mem.clone());
    fake.wait_for(Event::Ready(5)).await;
    assert_eq!(fake.calls("/gateway/bot").len(), 3);
    d.stop.send(true).unwrap();
    fake.wait_for(Event::Closed(5)).await;
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
