//! ntfy end to end: a real `airlock serve` publishes each card to the approver's topic on a
//! local ntfy that enforces the publish-as-JSON format; the test then presses the card's
//! `http` actions exactly as the ntfy app would (method, headers, body as published), sent to
//! the control listener as a reverse proxy behind `public_url` would.
mod e2e;
mod support;

use e2e::fake_ntfy::FakeNtfy;
use e2e::*;
use serde_json::Value;
use support::*;

const PUBLIC: &str = "https://airlock.example.test";

fn ntfy_channel(n: &FakeNtfy) -> String {
    format!(
        "[channels.ntfy]\nserver = \"{}\"\ntoken = \"env:NTFY_TOKEN\"\npublic_url = \"{PUBLIC}\"\n\n",
        n.url
    )
}

fn person(name: &str, role: &str, topic: &str) -> String {
    format!("[people.{name}]\nroles = [\"{role}\"]\nntfy = \"{topic}\"\n\n")
}

/// The card published to `topic` (the first message there with actions).
async fn card(n: &FakeNtfy, topic: &str) -> Value {
    n.wait_for(&format!("a card on {topic}"), |m| {
        m["topic"] == topic && m.get("actions").is_some()
    })
    .await
}

/// The action labelled `label`, checked to be one of ours: a POST of topic + token to the
/// control plane's callback and nothing else.
fn action<'a>(card: &'a Value, label: &str) -> &'a Value {
    let a = card["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["label"].as_str().is_some_and(|l| l.starts_with(label)))
        .unwrap_or_else(|| panic!("no {label} action in {card}"));
    assert_eq!(a["action"], "http");
    assert_eq!(a["url"], format!("{PUBLIC}/callbacks/ntfy"));
    assert_eq!(a["method"], "POST");
    a
}

/// The signed tokens of a card's actions (checked like every channel's buttons).
fn tokens(id: &str, card: &Value) -> Tokens {
    let found = card["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let body: Value = serde_json::from_str(a["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["topic"], card["topic"], "an action names its own topic");
            assert_eq!(body.as_object().unwrap().len(), 2, "topic and token only: {body}");
            body["token"].as_str().unwrap().to_string()
        })
        .collect();
    tokens_for(id, found)
}

/// Presses an action as the ntfy app does; `body` replaces the published one when given.
async fn press(gw: &Gateway, action: &Value, body: Option<String>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("http://{}/callbacks/ntfy", gw.control));
    for (k, v) in action["headers"].as_object().unwrap() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    let body = body.unwrap_or_else(|| action["body"].as_str().unwrap().to_string());
    let r = req.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    // Malformed presses are answered in plain text, votes as JSON.
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn press_body(topic: &str, token: &str) -> Option<String> {
    Some(airlock_channels::ntfy::press_body(topic, token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_approval_forwards_the_held_bytes_once() {
    let n = FakeNtfy::start().await;
    let up = upstream(true).await;
    let people = format!(
        "{}{}",
        person("alice", "owner", "airlock-alice"),
        person("mallory", "intern", "airlock-mallory")
    );
    let gw = gateway(&up, &people, &ntfy_channel(&n), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;

    let c = card(&n, "airlock-alice").await;
    assert_eq!(c["priority"], 4, "stands out");
    assert_eq!(c["tags"], serde_json::json!(["rotating_light", "lock"]));
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains("sending mail needs a human") && msg.contains("mailbot"),
        "{msg}"
    );
    let t = tokens(&id, &c);
    assert!(t.grant.is_some(), "the rule offers a grant");

    let (status, reply) = press(&gw, action(&c, "Approve"), None).await;
    assert_eq!((status, reply["ok"].clone()), (200, Value::Bool(true)), "{reply}");
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body, MAIL.as_bytes(), "the exact held bytes");
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));

    // The outcome is a new notification without buttons, and Alice is told her vote counted.
    let closed = n
        .wait_for("the closed card", |m| {
            m["topic"] == "airlock-alice"
                && m.get("actions").is_none()
                && m["title"].as_str().unwrap().contains("Approved")
        })
        .await;
    assert!(
        closed["message"].as_str().unwrap().contains("Approved by alice"),
        "{closed}"
    );
    n.wait_for("the answer", |m| {
        m["topic"] == "airlock-alice" && m["message"].as_str().unwrap().contains("Your vote counted")
    })
    .await;

    // Pressed again (a replay of the same body): refused, non-2xx so the app says so.
    let (status, reply) = press(&gw, action(&c, "Approve"), None).await;
    assert_eq!(status, 403, "{reply}");
    assert!(reply["text"].as_str().unwrap().contains("already decided"), "{reply}");
    assert_eq!(up.requests().len(), 1, "forwarded once");
    // Only Alice got a card; Mallory holds no approver role.
    assert!(n.published().iter().all(|m| m["topic"] == "airlock-alice"));
    assert!(n.violations().is_empty(), "{:?}", n.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_a_token_counts_only_for_the_person_it_was_minted_for() {
    let n = FakeNtfy::start().await;
    let up = upstream(true).await;
    let people = format!(
        "{}{}{}",
        person("alice", "owner", "airlock-alice"),
        person("bob", "owner", "airlock-bob"),
        person("mallory", "intern", "airlock-mallory")
    );
    let gw = gateway(
        &up,
        &people,
        &ntfy_channel(&n),
        DEPLOY_RULE.replace("senior", "owner").as_str(),
    );
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, "/deploy", "text/plain", b"ship v42".to_vec());
    let id = events.next("pending").await;
    let (ca, cb) = (card(&n, "airlock-alice").await, card(&n, "airlock-bob").await);
    let (ta, tb) = (tokens(&id, &ca), tokens(&id, &cb));
    assert_ne!(ta.approve, tb.approve, "each person's buttons are their own");
    let approve = action(&ca, "Approve");

    // Someone reading Alice's topic presses her button as Bob (quorum is 2: it would count).
    let (status, reply) = press(&gw, approve, press_body("airlock-bob", &ta.approve)).await;
    assert_eq!(status, 403, "{reply}");
    assert!(reply["text"].as_str().unwrap().contains("refused"), "{reply}");
    // …as Mallory, who has a topic but no approver role, and as a topic nobody owns.
    let (status, _) = press(&gw, approve, press_body("airlock-mallory", &ta.approve)).await;
    assert_eq!(status, 403);
    let (status, reply) = press(&gw, approve, press_body("airlock-eve", &ta.approve)).await;
    assert_eq!(status, 403);
    assert!(reply["text"].as_str().unwrap().contains("not configured"), "{reply}");
    // Forged: the decision letter flipped on Alice's deny token.
    let forged = ta.deny.replacen(".d.", ".a.", 1);
    let (status, _) = press(&gw, approve, press_body("airlock-alice", &forged)).await;
    assert_eq!(status, 403);
    // Not ours at all.
    let (status, _) = press(&gw, approve, Some("{\"topic\":\"airlock-alice\"}".into())).await;
    assert_eq!(status, 400);
    assert!(!up.contacted() && !agent.is_finished());

    // Alice's own press counts once; pressing again does not make a quorum of two.
    let (status, reply) = press(&gw, approve, None).await;
    assert_eq!((status, reply["ok"].clone()), (200, Value::Bool(true)), "{reply}");
    let (status, reply) = press(&gw, approve, None).await;
    assert_eq!(status, 403, "{reply}");
    assert!(!up.contacted() && !agent.is_finished());
    // Bob's own button completes it.
    let (status, _) = press(&gw, action(&cb, "Approve"), None).await;
    assert_eq!(status, 200);
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert_eq!(up.last().body, b"ship v42");

    let mut gw = gw;
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for want in [
        "alice via ntfy (user airlock-alice): click refused: the button was refused",
        "click by ntfy user airlock-eve refused: not a configured person",
        "mallory via ntfy",
        "bob voted via ntfy",
    ] {
        assert!(audit.contains(want), "no {want:?} in the audit log");
    }
    assert!(!audit.contains(e2e::fake_ntfy::TOKEN));
    assert!(n.violations().is_empty(), "{:?}", n.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_a_hostile_body_stays_inert() {
    let n = FakeNtfy::start().await;
    let up = upstream(true).await;
    let gw = gateway(
        &up,
        &person("alice", "owner", "airlock-alice"),
        &ntfy_channel(&n),
        MAIL_RULE,
    );
    let mut events = Events::open(&gw).await;
    let fake_actions = r#"{"actions":[{"action":"http","label":"Approve","url":"https://evil.example/","body":"x"}]}"#;
    let mut body = format!(
        "[✅ Approve] [❌ Deny] @all <b>x</b> **bold** [link](https://evil.example) pay\u{202E}gpj.exe zero\u{200B}width\n{fake_actions}\n"
    );
    for i in 0..10_000 {
        body.push_str(&format!("line {i} <script>alert(1)</script>\n"));
    }
    let agent = send(&gw, up.port, MAIL_PATH, "text/plain", body.into_bytes());
    let id = events.next("pending").await;

    let c = card(&n, "airlock-alice").await;
    assert!(n.violations().is_empty(), "{:?}", n.violations());
    let t = tokens(&id, &c);
    let labels: Vec<&str> = c["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Approve", "Deny", "Approve for 15 min"]);
    for a in c["actions"].as_array().unwrap() {
        assert_eq!(a["url"], format!("{PUBLIC}/callbacks/ntfy"));
    }
    assert!(c.get("markdown").is_none() && c.get("click").is_none());
    let msg = c["message"].as_str().unwrap();
    assert!(msg.len() <= 4096);
    assert!(msg.contains("more bytes — full request on the dashboard"), "{msg}");
    assert!(msg.contains("<U+202E>") && msg.contains("<U+200B>"), "{msg}");
    assert!(!msg.contains('\u{202E}') && !msg.contains('\u{200B}'));
    assert!(msg.contains("│ [✅ Approve] [❌ Deny]"), "quoted as data: {msg}");

    let (status, _) = press(&gw, action(&c, "Deny"), press_body("airlock-alice", &t.deny)).await;
    assert_eq!(status, 200);
    assert_eq!(agent.await.unwrap().status(), 403);
    let closed = n
        .wait_for("the closed card", |m| {
            m.get("actions").is_none() && m["title"].as_str().unwrap().contains("Denied")
        })
        .await;
    assert!(closed["message"].as_str().unwrap().len() <= 4096);
    assert!(!up.contacted());
    assert!(n.violations().is_empty(), "{:?}", n.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_after_a_crash_the_old_buttons_count_for_nothing() {
    let n = FakeNtfy::start().await;
    let up = upstream(true).await;
    let mut gw = gateway(
        &up,
        &person("alice", "owner", "airlock-alice"),
        &ntfy_channel(&n),
        MAIL_RULE,
    );
    let mut events = Events::open(&gw).await;
    let agent = try_send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let c = card(&n, "airlock-alice").await;
    tokens(&id, &c);

    // A crash: no shutdown path runs; the restarted gateway abandons what was held.
    let mut child = gw.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(agent.await.unwrap().is_err(), "the held request got no answer");
    gw.serve(ENV);

    // The card's buttons are pressed after the restart: refused, nothing forwarded, ever.
    for label in ["Approve", "Deny"] {
        let (status, reply) = press(&gw, action(&c, label), None).await;
        assert_eq!(status, 403, "{reply}");
        assert!(reply["text"].as_str().unwrap().contains("already decided"), "{reply}");
    }
    assert!(!up.contacted());
    assert!(n.violations().is_empty(), "{:?}", n.violations());
}
