//! WhatsApp end to end: a real `airlock serve` sends each card through a local WhatsApp
//! Cloud API; presses come back as webhooks signed with `X-Hub-Signature-256`, posted to the
//! control listener as Meta posts them.
mod e2e;
mod support;

use e2e::fake_whatsapp::{APP_SECRET, FakeWhatsApp, PHONE_ID, TEMPLATE, VERIFY, now_secs, sign};
use e2e::*;
use serde_json::Value;
use support::*;

const ALICE: &str = "15551234567";
const BOB: &str = "15557654321";
const MALLORY: &str = "15550001111";
const EVE: &str = "15559998888";
const PUBLIC: &str = "https://airlock.example.test";

fn channel(fake: &FakeWhatsApp, template: bool) -> String {
    format!(
        "[channels.whatsapp]\nphone_number_id = \"{PHONE_ID}\"\naccess_token = \"env:WA_TOKEN\"\n\
         app_secret = \"env:WA_SECRET\"\nverify_token = \"env:WA_VERIFY\"\npublic_url = \"{PUBLIC}\"\n\
         api_url = \"{}\"\n{}\n",
        fake.api_base,
        if template {
            format!("template = \"{TEMPLATE}\"\n")
        } else {
            String::new()
        }
    )
}

fn person(name: &str, role: &str, wa: &str) -> String {
    format!("[people.{name}]\nroles = [\"{role}\"]\nwhatsapp = \"{wa}\"\n\n")
}

async fn post(gw: &Gateway, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/whatsapp", gw.control))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        r = r.header("X-Hub-Signature-256", s);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn signed(gw: &Gateway, body: &str) -> (u16, Value) {
    post(gw, body, Some(sign(APP_SECRET, body))).await
}

/// The (message id, body) of the first message to `to` of `kind`, once the gateway has
/// recorded it as sent (a press on a card it has not recorded yet would not count).
async fn card(gw: &Gateway, fake: &FakeWhatsApp, to: &str, kind: &str, nth: usize) -> (String, Value) {
    fake.wait_until(&format!("card {nth} for {to}"), |f| {
        f.sent_to(to).iter().filter(|(_, m)| m["type"] == kind).count() > nth
    })
    .await;
    let cards = fake
        .sent()
        .iter()
        .filter(|(_, m)| m["type"] == "interactive" || m["type"] == "template")
        .count();
    for _ in 0..500 {
        if gw.logs().matches("whatsapp card delivered").count() >= cards {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    fake.sent_to(to)
        .into_iter()
        .filter(|(_, m)| m["type"] == kind)
        .nth(nth)
        .unwrap()
}

fn reply_ids(m: &Value) -> Vec<String> {
    m["interactive"]["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reply"]["id"].as_str().unwrap().to_string())
        .collect()
}

fn payloads(m: &Value) -> Vec<String> {
    m["template"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "button")
        .map(|c| c["parameters"][0]["payload"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_signed_presses_decide_and_the_card_gets_a_closing_reply() {
    let fake = FakeWhatsApp::start().await;
    let up = upstream(true).await;
    let people = format!(
        "{}{}",
        person("alice", "owner", ALICE),
        person("mallory", "intern", MALLORY)
    );
    let gw = gateway(&up, &people, &channel(&fake, false), MAIL_RULE);

    // The subscription handshake answers only our verify token.
    let hs = |token: &str| {
        format!(
            "http://{}/callbacks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}",
            gw.control
        )
    };
    let r = reqwest::get(hs(VERIFY)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "1158201444");
    assert_eq!(reqwest::get(hs("guessed")).await.unwrap().status(), 403);

    // Alice wrote to the number: her window is open, she gets the interactive card.
    fake.open_window(ALICE);
    assert_eq!(signed(&gw, &FakeWhatsApp::text(ALICE, "hi")).await.0, 200);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (card_id, card) = card(&gw, &fake, ALICE, "interactive", 0).await;
    let t = tokens_for(&id, reply_ids(&card));
    assert!(t.grant.is_some());
    let text = card["interactive"]["body"]["text"].as_str().unwrap();
    assert!(text.contains(&format!("{PUBLIC}/dashboard/approvals/{id}")), "{text}");
    assert!(
        text.contains("sending mail needs a human") && text.contains("Agent: mailbot"),
        "{text}"
    );

    let now = now_secs();
    let press = FakeWhatsApp::press(ALICE, &card_id, &t.approve, false, now);
    assert_eq!(post(&gw, &press, None).await.0, 401, "unsigned");
    assert_eq!(post(&gw, &press, Some(sign("not-the-secret", &press))).await.0, 401);
    let stale = FakeWhatsApp::press(ALICE, &card_id, &t.approve, false, now - 3600);
    assert_eq!(signed(&gw, &stale).await.0, 401, "an hour-old press is stale");
    // Mallory (no approver role) and Eve (not in [people]) press Alice's button: refused.
    fake.open_window(MALLORY);
    fake.open_window(EVE);
    let (_, reply) = signed(&gw, &FakeWhatsApp::press(MALLORY, &card_id, &t.approve, false, now)).await;
    assert_eq!(reply["ok"], false, "{reply}");
    let (_, reply) = signed(&gw, &FakeWhatsApp::press(EVE, &card_id, &t.approve, false, now)).await;
    assert!(reply["text"].as_str().unwrap().contains("not configured"), "{reply}");
    assert!(!up.contacted() && !agent.is_finished());

    let (status, reply) = signed(&gw, &press).await;
    assert_eq!((status, reply["ok"].clone()), (200, Value::Bool(true)), "{reply}");
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.last().body, MAIL.as_bytes());
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    // WhatsApp cannot edit the card: a reply to it says how it ended.
    fake.wait_until("the closing reply", |f| {
        f.sent_to(ALICE).iter().any(|(_, m)| {
            m["context"]["message_id"] == card_id.as_str()
                && m["text"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Approved by alice")
        })
    })
    .await;
    // Meta delivers the same webhook again: counted once.
    let (_, reply) = signed(&gw, &press).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(up.requests().len(), 1);
    assert!(
        fake.sent_to(MALLORY).iter().all(|(_, m)| m["type"] == "text"),
        "no card for mallory"
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    let mut gw = gw;
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for want in [
        "mallory via whatsapp",
        &format!("click by whatsapp user {EVE} refused: not a configured person"),
        "alice voted via whatsapp",
    ] {
        assert!(audit.contains(want), "no {want:?} in the audit log");
    }
    assert_no_credential("the audit log", &audit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_outside_the_window_the_template_goes_and_a_press_counts_only_on_its_card() {
    let fake = FakeWhatsApp::start().await;
    let up = upstream(true).await;
    let people = format!("{}{}", person("alice", "owner", ALICE), person("bob", "owner", BOB));
    let gw = gateway(&up, &people, &channel(&fake, true), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let first = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id1 = events.next("pending").await;
    let (card1, tpl1) = card(&gw, &fake, ALICE, "template", 0).await;
    let (_, bob1) = card(&gw, &fake, BOB, "template", 0).await;
    let t1 = tokens_for(&id1, payloads(&tpl1));
    assert_ne!(
        t1,
        tokens_for(&id1, payloads(&bob1)),
        "each person's buttons are their own"
    );
    let vars: Vec<String> = tpl1["template"]["components"][0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(vars[1], "mailbot");
    assert_eq!(vars[4], format!("{PUBLIC}/dashboard/approvals/{id1}"));

    let second = send(
        &gw,
        up.port,
        MAIL_PATH,
        "application/json",
        b"{\"raw\":\"second\"}".to_vec(),
    );
    let id2 = events.next("pending").await;
    let (card2, tpl2) = card(&gw, &fake, ALICE, "template", 1).await;
    let t2 = tokens_for(&id2, payloads(&tpl2));
    fake.open_window(ALICE);
    fake.open_window(BOB);
    let now = now_secs();
    // Card 1's button sent as a reply to card 2: it counts for nothing.
    let (_, reply) = signed(&gw, &FakeWhatsApp::press(ALICE, &card2, &t1.approve, true, now)).await;
    assert_eq!(reply["ok"], false, "{reply}");
    // Bob presses Alice's button on Alice's card (forwarded to him): refused.
    let (_, reply) = signed(&gw, &FakeWhatsApp::press(BOB, &card1, &t1.approve, true, now)).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(!up.contacted());

    let (_, reply) = signed(&gw, &FakeWhatsApp::press(ALICE, &card2, &t2.deny, true, now)).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(second.await.unwrap().status(), 403);
    let (_, reply) = signed(&gw, &FakeWhatsApp::press(ALICE, &card1, &t1.approve, true, now)).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert_eq!(up.last().body, MAIL.as_bytes());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_a_hostile_body_fits_the_card_inert_with_only_our_buttons() {
    let fake = FakeWhatsApp::start().await;
    let up = upstream(true).await;
    let gw = gateway(&up, &person("alice", "owner", ALICE), &channel(&fake, false), MAIL_RULE);
    fake.open_window(ALICE);
    let mut events = Events::open(&gw).await;
    let mut body = String::from("```\n*Approve* _now_ ~x~ @15559998888 pay\u{202E}gpj.exe zero\u{200B}width\n");
    for i in 0..10_000 {
        body.push_str(&format!("line {i} ``` *bold*\n"));
    }
    let agent = send(&gw, up.port, MAIL_PATH, "text/plain", body.into_bytes());
    let id = events.next("pending").await;
    let (card_id, card) = card(&gw, &fake, ALICE, "interactive", 0).await;
    // The fake Cloud API accepted it: body ≤ 1,024 characters, ≤ 3 buttons, titles ≤ 20.
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let t = tokens_for(&id, reply_ids(&card));
    let text = card["interactive"]["body"]["text"].as_str().unwrap();
    assert_eq!(text.matches("```").count(), 2, "one monospace block, ours: {text}");
    assert!(text.contains("more bytes — full request on the dashboard"), "{text}");
    assert!(!text.contains('\u{202E}') && !text.contains('\u{200B}'));
    let (_, reply) = signed(&gw, &FakeWhatsApp::press(ALICE, &card_id, &t.deny, false, now_secs())).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(agent.await.unwrap().status(), 403);
    assert!(!up.contacted());
}
