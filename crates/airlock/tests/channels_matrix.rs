//! Matrix end to end: a real `airlock serve` sends each card to a direct room on a local
//! homeserver and reads votes by `/sync` long polling — reactions on the card, or typed codes.
//! The `since` position survives a restart: nothing is lost, nothing read twice.
mod e2e;
mod support;

use e2e::fake_matrix::{BOT, FakeMatrix};
use e2e::*;
use serde_json::Value;
use support::*;

const ALICE: &str = "@alice:fake.test";
const MALLORY: &str = "@mallory:fake.test";
const EVE: &str = "@eve:elsewhere.test";

fn channel(m: &FakeMatrix) -> String {
    format!(
        "[channels.matrix]\nhomeserver = \"{}\"\naccess_token = \"env:MATRIX_TOKEN\"\n\n",
        m.url
    )
}

fn person(name: &str, role: &str, mxid: &str) -> String {
    format!("[people.{name}]\nroles = [\"{role}\"]\nmatrix = \"{mxid}\"\n\n")
}

/// The `nth` card the bot posted in `user`'s direct room: (room, event, the card).
async fn card(m: &FakeMatrix, user: &str, nth: usize) -> (String, String, Value) {
    let cards = |m: &FakeMatrix| -> Vec<Value> {
        m.room_of(user)
            .map(|r| {
                m.events(&r)
                    .into_iter()
                    .filter(|e| {
                        e["sender"] == BOT
                            && e["type"] == "m.room.message"
                            && e["content"]["msgtype"] == "m.text"
                            && e["content"]["m.relates_to"].is_null()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    m.wait_until(&format!("card {nth} for {user}"), |m| cards(m).len() > nth)
        .await;
    let room = m.room_of(user).unwrap();
    let c = cards(m)[nth].clone();
    // Seeded with our two reactions.
    m.wait_until("the seeded reactions", |m| {
        m.events(&room)
            .iter()
            .filter(|e| e["type"] == "m.reaction" && e["content"]["m.relates_to"]["event_id"] == c["event_id"])
            .count()
            >= 2
    })
    .await;
    (room, c["event_id"].as_str().unwrap().to_string(), c)
}

/// The card's vote code, from its instructions.
fn code(card: &Value) -> String {
    let body = card["content"]["body"].as_str().unwrap();
    let at = body.rfind("\"approve ").expect("voting instructions") + 9;
    body[at..at + 8].to_string()
}

async fn answer(m: &FakeMatrix, room: &str, event: &str) -> String {
    m.wait_until(&format!("an answer to {event}"), |m| {
        !m.answers_to(room, event).is_empty()
    })
    .await;
    m.answers_to(room, event).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_reactions_and_codes_vote_as_the_sender_and_the_card_is_edited() {
    let m = FakeMatrix::start().await;
    let up = upstream(true).await;
    let people = format!(
        "{}{}",
        person("alice", "owner", ALICE),
        person("mallory", "intern", MALLORY)
    );
    let gw = gateway(&up, &people, &channel(&m), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;
    let (room, card_id, card) = card(&m, ALICE, 0).await;
    let html = card["content"]["formatted_body"].as_str().unwrap();
    assert!(
        html.contains("sending mail needs a human") && html.contains("mailbot"),
        "{html}"
    );
    assert_eq!(card["content"]["m.mentions"], serde_json::json!({}));
    let code = code(&card);
    assert!(m.room_of(MALLORY).is_none(), "no card for a non-approver");

    // A stranger's reaction and a non-approver's code: refused, answered, recorded.
    let r = m.react(EVE, &room, &card_id, "✅");
    assert!(answer(&m, &room, &r).await.contains("not configured"));
    let r = m.say(MALLORY, &room, &format!("approve {code}"));
    assert!(answer(&m, &room, &r).await.contains("refused"));
    // A code that is no card's.
    let r = m.say(ALICE, &room, "approve 0000AAAA");
    assert!(answer(&m, &room, &r).await.contains("not valid"));
    assert!(!up.contacted() && !agent.is_finished());

    let r = m.react(ALICE, &room, &card_id, "✅\u{fe0f}");
    assert!(answer(&m, &room, &r).await.contains("counted"));
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.last().body, MAIL.as_bytes());
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    // The card is edited to its outcome and our reactions removed.
    m.wait_until("the card edited and unseeded", |m| {
        let evs = m.events(&room);
        let edited = evs.iter().any(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["content"]["m.relates_to"]["event_id"] == card_id.as_str()
                && e["content"]["m.new_content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("Approved by alice") && !b.contains(&code))
        });
        edited && evs.iter().filter(|e| e["type"] == "m.room.redaction").count() == 2
    })
    .await;
    // The code takes no more votes.
    let r = m.say(ALICE, &room, &format!("deny {code}"));
    assert!(answer(&m, &room, &r).await.contains("not valid"));
    assert_eq!(up.requests().len(), 1);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    let _ = id;

    let mut gw = gw;
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for want in [
        "mallory via matrix",
        &format!("click by matrix user {EVE} refused: not a configured person"),
        "alice voted via matrix",
    ] {
        assert!(audit.contains(want), "no {want:?} in the audit log");
    }
    assert_no_credential("the audit log", &audit);
}

/// Alice denies `card` by its code; returns the vote's event and the position past it, once
/// the reader has stored that position (its next poll starts there).
async fn deny_and_store(m: &FakeMatrix, room: &str, card: &Value) -> (String, usize) {
    let deny = m.say(ALICE, room, &format!("deny {}", code(card)));
    assert!(answer(m, room, &deny).await.contains("counted"));
    let past = m.position();
    m.wait_until("a poll from past the vote", |m| {
        m.sinces()
            .iter()
            .flatten()
            .any(|s| s[1..].parse::<usize>().unwrap() >= past)
    })
    .await;
    (deny, past)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_a_restart_resumes_from_the_stored_position_losing_and_replaying_nothing() {
    let m = FakeMatrix::start().await;
    let up = upstream(true).await;
    let mut gw = gateway(&up, &person("alice", "owner", ALICE), &channel(&m), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    events.next("pending").await;
    let (room, _, card1) = card(&m, ALICE, 0).await;
    let (deny, past) = deny_and_store(&m, &room, &card1).await;
    assert_eq!(agent.await.unwrap().status(), 403);
    let before = m.sinces().len();

    gw.stop();
    // Written while airlock is down: read after the restart, not lost.
    let late = m.say(ALICE, &room, &format!("approve {}", code(&card1)));
    gw.serve(ENV);
    assert!(
        answer(&m, &room, &late).await.contains("not valid"),
        "the closed card's code"
    );
    let after = m.sinces()[before..].to_vec();
    let resumed: usize = after[0].as_deref().expect("a stored position")[1..].parse().unwrap();
    assert!(
        resumed >= past,
        "resumed at s{resumed}, before the vote read at s{past}"
    );
    // The vote before the restart was read once.
    assert_eq!(m.answers_to(&room, &deny).len(), 1);

    // The same direct room serves the next card.
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    events.next("pending").await;
    let (room2, card2_id, _) = card(&m, ALICE, 1).await;
    assert_eq!(room2, room);
    let r = m.react(ALICE, &room, &card2_id, "✅");
    assert!(answer(&m, &room, &r).await.contains("counted"));
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

/// Two replicas on PostgreSQL: the one reading `/sync` dies (kill -9) after a vote; the
/// survivor takes the feed, resumes at the position stored in the shared database, and reads
/// the vote cast while nobody was reading — the first is not read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_reader_fails_over_on_postgres_losing_and_replaying_no_vote() {
    let m = FakeMatrix::start().await;
    let up = upstream(true).await;
    let config = format!(
        "[[agents]]\nname = \"mailbot\"\nsecrets = [\"gmail\"]\n\n[secrets.gmail]\nhosts = [\"localhost\"]\n\
         header = \"Authorization\"\nformat = \"Bearer {{secret}}\"\nplaceholder = \"airlock-gmail\"\n\n\
         [approvals]\nmax_body = 1048576\n\n{}{}{MAIL_RULE}",
        person("alice", "owner", ALICE),
        channel(&m)
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
    m.wait_until("a reader polling", |m| !m.sinces().is_empty()).await;
    let leader = feed_leader(&c).await;
    let holder = 1 - leader;
    let first = send(&c[holder], up.port, MAIL_PATH, "application/json", MAIL.into());
    let (room, _, card1) = card(&m, ALICE, 0).await;
    let second = send(&c[holder], up.port, MAIL_PATH, "application/json", MAIL.into());
    let (_, card2_id, _) = card(&m, ALICE, 1).await;

    let (deny, past) = deny_and_store(&m, &room, &card1).await;
    assert_eq!(first.await.unwrap().status(), 403);
    let before = m.sinces().len();
    c.kill9(leader);
    // Cast while nobody reads: the survivor must find it.
    let approve = m.react(ALICE, &room, &card2_id, "✅");
    assert!(answer(&m, &room, &approve).await.contains("counted"));
    assert_eq!(second.await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert_eq!(up.last().body, MAIL.as_bytes());
    let resumed: Vec<usize> = m.sinces()[before..]
        .iter()
        .map(|s| s.as_deref().expect("a stored position")[1..].parse().unwrap())
        .collect();
    assert!(
        resumed.iter().all(|&s| s >= past),
        "{resumed:?} re-reads before s{past}"
    );
    assert_eq!(m.answers_to(&room, &deny).len(), 1, "the first vote read once");
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    c.replicas.remove(leader);
    c.stop_and_verify(REAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_a_hostile_body_stays_escaped_text_in_one_code_block() {
    let m = FakeMatrix::start().await;
    let up = upstream(true).await;
    let gw = gateway(&up, &person("alice", "owner", ALICE), &channel(&m), MAIL_RULE);
    let mut events = Events::open(&gw).await;
    let mut body = String::from(
        "</code></pre><a href=\"https://evil.example\">Approve</a> @room <img src=x> deny 0000AAAA pay\u{202E}gpj.exe zero\u{200B}width\n",
    );
    for i in 0..10_000 {
        body.push_str(&format!("line {i} <b>@room</b> &amp;\n"));
    }
    let agent = send(&gw, up.port, MAIL_PATH, "text/plain", body.into_bytes());
    events.next("pending").await;
    let (room, _, card) = card(&m, ALICE, 0).await;
    // The fake homeserver accepted it: our tags only, no attribute, entities only for & < > " '.
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    let html = card["content"]["formatted_body"].as_str().unwrap();
    assert_eq!(html.matches("<pre>").count(), 1, "{html}");
    assert!(html.contains("&lt;/code&gt;&lt;/pre&gt;&lt;a href=&quot;https://evil.example&quot;&gt;"));
    assert!(html.contains("more bytes — full request on the dashboard"));
    assert!(!html.contains('\u{202E}') && !html.contains('\u{200B}'));
    assert_eq!(card["content"]["m.mentions"], serde_json::json!({}));
    let deny = m.say(ALICE, &room, &format!("deny {}", code(&card)));
    assert!(answer(&m, &room, &deny).await.contains("counted"));
    assert_eq!(agent.await.unwrap().status(), 403);
    assert!(!up.contacted());
}
