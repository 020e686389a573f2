//! Mattermost end to end: a real `airlock serve` posts each card to a DM on a local
//! Mattermost (REST API v4, bearer token, message-attachment actions); the test then presses
//! the buttons as the Mattermost server does, POSTing the button's context and the clicker's
//! user id to the action's integration URL (here the control listener, as a reverse proxy
//! behind `public_url` would).
mod e2e;
mod support;

use e2e::fake_mattermost::{FakeMattermost, mmid};
use e2e::*;
use serde_json::{Value, json};
use support::*;

const PUBLIC: &str = "https://airlock.example.test";

fn channel(m: &FakeMattermost) -> String {
    format!(
        "[channels.mattermost]\nurl = \"{}\"\nbot_token = \"env:MM_BOT\"\ncallback_secret = \"env:MM_SECRET\"\npublic_url = \"{PUBLIC}\"\n\n",
        m.url
    )
}

fn person(name: &str, role: &str) -> String {
    format!("[people.{name}]\nroles = [\"{role}\"]\nmattermost = \"{name}\"\n\n")
}

/// The card posted to `user`'s DM: (post id, the post).
async fn card(m: &FakeMattermost, user: &str) -> (String, Value) {
    let dm = mmid(&format!("dm{}", mmid(user)));
    m.wait_until(&format!("a card for {user}"), |m| {
        m.calls("POST /posts").iter().any(|p| p["channel_id"] == dm.as_str())
    })
    .await;
    let ids: Vec<String> = (0..10).map(|n| mmid(&format!("post{}", "x".repeat(n)))).collect();
    ids.into_iter()
        .filter_map(|id| m.post(&id).map(|p| (id, p)))
        .find(|(_, p)| p["channel_id"] == dm.as_str())
        .unwrap()
}

fn actions(post: &Value) -> Vec<Value> {
    post["props"]["attachments"][0]["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn action(post: &Value, id: &str) -> Value {
    let a = actions(post)
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {post}"));
    assert_eq!(a["integration"]["url"], format!("{PUBLIC}/callbacks/mattermost"));
    a
}

fn tokens(id: &str, post: &Value) -> Tokens {
    tokens_for(
        id,
        actions(post)
            .iter()
            .map(|a| a["integration"]["context"]["token"].as_str().unwrap().to_string())
            .collect(),
    )
}

/// `user` presses `action` on post `post_id`, as Mattermost's server reports it.
async fn press(gw: &Gateway, user: &str, post_id: &str, action: &Value) -> (u16, Value) {
    let body = FakeMattermost::press_body(user, post_id, action);
    post_raw(gw, &body).await
}

async fn post_raw(gw: &Gateway, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/callbacks/mattermost", gw.control))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn ephemeral(v: &Value) -> &str {
    v["ephemeral_text"]
        .as_str()
        .unwrap_or_else(|| panic!("no ephemeral_text in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_approval_forwards_the_held_bytes_and_closes_the_post() {
    let m = FakeMattermost::start(&[("alice", true), ("mallory", true), ("eve", true)]).await;
    let up = upstream(true).await;
    let people = format!("{}{}", person("alice", "owner"), person("mallory", "intern"));
    let gw = gateway(&up, &people, &channel(&m), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;

    let (post_id, post) = card(&m, "alice").await;
    let t = tokens(&id, &post);
    assert!(t.grant.is_some());
    let approve = action(&post, "approve");
    assert_eq!(approve["integration"]["context"]["secret"], MM_SECRET);

    // The callback secret is what tells Mattermost's server from anyone else.
    let mut forged = FakeMattermost::press_body("alice", &post_id, &approve);
    forged["context"]["secret"] = json!("guessed");
    assert_eq!(post_raw(&gw, &forged).await.0, 401);
    // Mallory (no approver role) and Eve (not in [people]) are refused, ephemerally.
    let (status, reply) = press(&gw, "mallory", &post_id, &approve).await;
    assert_eq!(status, 200);
    assert!(ephemeral(&reply).contains("refused"), "{reply}");
    let (_, reply) = press(&gw, "eve", &post_id, &approve).await;
    assert!(ephemeral(&reply).contains("not configured"), "{reply}");
    assert!(!up.contacted() && !agent.is_finished());

    let (status, reply) = press(&gw, "alice", &post_id, &approve).await;
    assert_eq!(
        (status, reply.clone()),
        (200, json!({})),
        "counted: no ephemeral needed"
    );
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.last().body, MAIL.as_bytes());
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    // The user was looked up through the API before the vote counted.
    assert!(m.calls("GET /users/{id}").contains(&json!(mmid("alice"))));
    m.wait_until("the post closed", |m| {
        m.post(&post_id)
            .is_some_and(|p| actions(&p).is_empty() && p.to_string().contains("Approved by alice"))
    })
    .await;

    // Replayed: refused, once forwarded.
    let (_, reply) = press(&gw, "alice", &post_id, &approve).await;
    assert!(ephemeral(&reply).contains("already decided"), "{reply}");
    assert_eq!(up.requests().len(), 1);
    assert_eq!(m.calls("POST /posts").len(), 1, "only Alice got a card");
    assert!(m.violations().is_empty(), "{:?}", m.violations());

    let mut gw = gw;
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for want in [
        "mallory via mattermost",
        "click by mattermost user eve refused: not a configured person",
        "alice voted via mattermost",
    ] {
        assert!(audit.contains(want), "no {want:?} in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_deactivated_users_and_other_peoples_buttons_count_for_nothing() {
    let m = FakeMattermost::start(&[("alice", true), ("bob", true), ("dave", false)]).await;
    let up = upstream(true).await;
    let people = format!(
        "{}{}{}",
        person("alice", "owner"),
        person("bob", "owner"),
        person("dave", "owner")
    );
    let gw = gateway(&up, &people, &channel(&m), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (alice_post, ap) = card(&m, "alice").await;
    let (_, bp) = card(&m, "bob").await;
    assert_ne!(
        tokens(&id, &ap),
        tokens(&id, &bp),
        "each person's buttons are their own"
    );

    // Bob presses a copy of Alice's button (her card forwarded to him).
    let (_, reply) = press(&gw, "bob", &alice_post, &action(&ap, "approve")).await;
    assert!(ephemeral(&reply).contains("refused"), "{reply}");
    // Dave is configured, but his account is deactivated.
    let (_, reply) = press(&gw, "dave", &alice_post, &action(&ap, "approve")).await;
    assert!(ephemeral(&reply).contains("could not be confirmed"), "{reply}");
    assert!(!up.contacted() && !agent.is_finished());

    let (_, reply) = press(&gw, "alice", &alice_post, &action(&ap, "deny")).await;
    assert_eq!(reply, json!({}));
    assert_eq!(agent.await.unwrap().status(), 403);
    assert!(!up.contacted());
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_a_hostile_body_stays_inside_the_code_block() {
    let m = FakeMattermost::start(&[("alice", true)]).await;
    let up = upstream(true).await;
    let gw = gateway(&up, &person("alice", "owner"), &channel(&m), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let mut body = String::from(
        "```\n@all @channel [Approve](https://evil.example) **x** <b>x</b> pay\u{202E}gpj.exe zero\u{200B}width\n````\n",
    );
    for i in 0..10_000 {
        body.push_str(&format!("line {i} ``` @here\n"));
    }
    let agent = send(&gw, up.port, MAIL_PATH, "text/plain", body.into_bytes());
    let id = events.next("pending").await;
    let (post_id, post) = card(&m, "alice").await;
    tokens(&id, &post);
    let ids: Vec<Value> = actions(&post).iter().map(|a| a["id"].clone()).collect();
    assert_eq!(ids, [json!("approve"), json!("deny"), json!("grant")]);
    let text = post["props"]["attachments"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("```text\n") && text.ends_with("\n```"), "{text}");
    assert_eq!(text.matches("```").count(), 2, "one fence, ours: {text}");
    assert!(text.contains("more bytes — full request on the dashboard"));
    assert!(!text.contains('\u{202E}') && !text.contains('\u{200B}'));
    assert_eq!(post["message"], "");
    let (_, reply) = press(&gw, "alice", &post_id, &action(&post, "deny")).await;
    assert_eq!(reply, json!({}));
    assert_eq!(agent.await.unwrap().status(), 403);
    m.wait_until("the post closed", |m| {
        m.post(&post_id).is_some_and(|p| actions(&p).is_empty())
    })
    .await;
    let closed = m.post(&post_id).unwrap();
    assert_eq!(
        closed["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .matches("```")
            .count(),
        2
    );
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_after_a_crash_the_old_buttons_count_for_nothing() {
    let m = FakeMattermost::start(&[("alice", true)]).await;
    let up = upstream(true).await;
    let mut gw = gateway(&up, &person("alice", "owner"), &channel(&m), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = try_send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (post_id, post) = card(&m, "alice").await;
    tokens(&id, &post);

    // A crash: no shutdown path runs; the restarted gateway abandons what was held.
    let mut child = gw.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(agent.await.unwrap().is_err(), "the held request got no answer");
    gw.serve(ENV);
    for button in ["approve", "deny"] {
        let (_, reply) = press(&gw, "alice", &post_id, &action(&post, button)).await;
        assert!(ephemeral(&reply).contains("already decided"), "{reply}");
    }
    assert!(!up.contacted());
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}
