//! Signal end to end: a real `airlock serve` sends each card through a local signal-cli
//! daemon (JSON-RPC over HTTP) and reads replies from its server-sent event stream.
mod e2e;
mod support;

use e2e::fake_signal::FakeSignal;
use e2e::*;
use support::*;

const ALICE: &str = "+15551234567";
const BOB: &str = "+15557654321";
const MALLORY: &str = "+15550001111";
const EVE: &str = "+15559998888";

fn channel(s: &FakeSignal) -> String {
    format!(
        "[channels.signal]\nurl = \"{}\"\naccount = \"{}\"\n\n",
        s.url,
        e2e::fake_signal::ACCOUNT
    )
}

fn person(name: &str, role: &str, number: &str) -> String {
    format!("[people.{name}]\nroles = [\"{role}\"]\nsignal = \"{number}\"\n\n")
}

/// The `nth` card sent to `to`, and its code.
async fn card(s: &FakeSignal, to: &str, nth: usize) -> (String, String) {
    s.wait_until(&format!("card {nth} for {to}"), |s| {
        s.sent_to(to)
            .iter()
            .filter(|t| t.starts_with("airlock: approval needed"))
            .count()
            > nth
    })
    .await;
    let t = s
        .sent_to(to)
        .into_iter()
        .filter(|t| t.starts_with("airlock: approval needed"))
        .nth(nth)
        .unwrap();
    let last = t.lines().last().unwrap();
    let at = last.find("\"approve ").expect("instructions") + 9;
    let code = last[at..at + 8].to_string();
    (t, code)
}

/// `from` replies `text`; returns the answer airlock sends back (not a card or a closing line).
async fn reply(s: &FakeSignal, from: &str, text: &str) -> String {
    let answers = |s: &FakeSignal| -> Vec<String> {
        s.sent_to(from)
            .into_iter()
            .filter(|t| !t.starts_with("airlock: approval needed") && !t.contains(" — approval "))
            .collect()
    };
    let before = answers(s).len();
    s.message(from, text);
    s.wait_until(&format!("an answer to {from}"), |s| answers(s).len() > before)
        .await;
    answers(s)[before].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_replies_with_the_code_vote_as_the_sender() {
    let s = FakeSignal::start().await;
    let up = upstream(true).await;
    let people = format!(
        "{}{}{}",
        person("alice", "owner", ALICE),
        person("bob", "owner", BOB),
        person("mallory", "intern", MALLORY)
    );
    let gw = gateway(&up, &people, &channel(&s), MAIL_RULE);
    s.wait_until("airlock following the event stream", |s| s.connections() > 0)
        .await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    events.next("pending").await;
    let (text, code) = card(&s, ALICE, 0).await;
    assert!(
        text.contains("sending mail needs a human") && text.contains("mailbot"),
        "{text}"
    );
    let (_, bob_code) = card(&s, BOB, 0).await;
    assert_ne!(code, bob_code, "each card its own code");
    assert!(s.sent_to(MALLORY).is_empty(), "no card for a non-approver");

    // A stranger, a non-approver, and Bob typing Alice's code: refused.
    assert!(
        reply(&s, EVE, &format!("approve {code}"))
            .await
            .contains("not configured")
    );
    assert!(reply(&s, MALLORY, &format!("approve {code}")).await.contains("refused"));
    assert!(reply(&s, BOB, &format!("approve {code}")).await.contains("refused"));
    assert!(reply(&s, ALICE, "approve 0000AAAA").await.contains("not valid"));
    assert!(!up.contacted() && !agent.is_finished());

    assert!(
        reply(&s, ALICE, &format!("Approve {}", code.to_lowercase()))
            .await
            .contains("counted")
    );
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.last().body, MAIL.as_bytes());
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    s.wait_until("the closing messages", |s| {
        [ALICE, BOB]
            .iter()
            .all(|n| s.sent_to(n).iter().any(|t| t.contains("Approved by alice")))
    })
    .await;
    // The code takes no more votes.
    assert!(reply(&s, ALICE, &format!("deny {code}")).await.contains("not valid"));
    assert_eq!(up.requests().len(), 1);
    assert!(s.violations().is_empty(), "{:?}", s.violations());

    let mut gw = gw;
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for want in [
        "mallory via signal",
        "bob via signal",
        &format!("click by signal user {EVE} refused: not a configured person"),
        "alice voted via signal",
    ] {
        assert!(audit.contains(want), "no {want:?} in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_a_restarted_gateway_reconnects_and_old_codes_count_for_nothing() {
    let s = FakeSignal::start().await;
    let up = upstream(true).await;
    let mut gw = gateway(&up, &person("alice", "owner", ALICE), &channel(&s), MAIL_RULE);
    s.wait_until("airlock following the event stream", |s| s.connections() > 0)
        .await;
    let mut events = Events::open(&gw).await;
    let agent = try_send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    events.next("pending").await;
    let (_, old) = card(&s, ALICE, 0).await;

    let connected = s.connections();
    let mut child = gw.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(agent.await.unwrap().is_err(), "the held request got no answer");
    gw.serve(ENV);
    s.wait_until("the restarted gateway following the stream", |s| {
        s.connections() > connected
    })
    .await;
    // The held request was abandoned: its code is refused.
    let answer = reply(&s, ALICE, &format!("approve {old}")).await;
    assert!(
        answer.contains("not valid") || answer.contains("already decided"),
        "{answer}"
    );

    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    events.next("pending").await;
    let (_, code) = card(&s, ALICE, 1).await;
    assert!(reply(&s, ALICE, &format!("deny {code}")).await.contains("counted"));
    assert_eq!(agent.await.unwrap().status(), 403);
    assert!(!up.contacted());
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_a_hostile_body_stays_plain_text_in_one_message() {
    let s = FakeSignal::start().await;
    let up = upstream(true).await;
    let gw = gateway(&up, &person("alice", "owner", ALICE), &channel(&s), MAIL_RULE);
    s.wait_until("airlock following the event stream", |s| s.connections() > 0)
        .await;
    let mut events = Events::open(&gw).await;
    let mut body = String::from("Reply \"approve 0000AAAA\" to approve\npay\u{202E}gpj.exe zero\u{200B}width\n");
    for i in 0..10_000 {
        body.push_str(&format!("line {i} **bold** @everyone\n"));
    }
    let agent = send(&gw, up.port, MAIL_PATH, "text/plain", body.into_bytes());
    events.next("pending").await;
    let (text, code) = card(&s, ALICE, 0).await;
    assert!(text.chars().count() <= 2000, "{} characters", text.chars().count());
    assert!(text.contains("more bytes — full request on the dashboard"));
    assert!(!text.contains('\u{202E}') && !text.contains('\u{200B}'));
    assert_ne!(code, "0000AAAA", "the code is ours, from the last line");
    assert!(reply(&s, ALICE, &format!("deny {code}")).await.contains("counted"));
    assert_eq!(agent.await.unwrap().status(), 403);
    assert!(!up.contacted());
    assert!(s.violations().is_empty(), "{:?}", s.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_reader_fails_over_on_postgres_and_a_code_counts_once() {
    let s = FakeSignal::start().await;
    let up = upstream(true).await;
    let config = format!(
        "[[agents]]\nname = \"mailbot\"\nsecrets = [\"gmail\"]\n\n[secrets.gmail]\nhosts = [\"localhost\"]\n\
         header = \"Authorization\"\nformat = \"Bearer {{secret}}\"\nplaceholder = \"airlock-gmail\"\n\n\
         [approvals]\nmax_body = 1048576\n\n{}{}{MAIL_RULE}",
        person("alice", "owner", ALICE),
        channel(&s)
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
    s.wait_until("a reader following the stream", |s| s.connections() > 0)
        .await;
    let leader = feed_leader(&c).await;
    let holder = 1 - leader;
    // Held on the replica that does not read the feed: its code lives in the shared store.
    let agent = send(&c[holder], up.port, MAIL_PATH, "application/json", MAIL.into());
    let (_, code) = card(&s, ALICE, 0).await;
    let connected = s.connections();
    c.kill9(leader);
    s.wait_until("the survivor following the stream", |s| s.connections() > connected)
        .await;
    assert!(reply(&s, ALICE, &format!("approve {code}")).await.contains("counted"));
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert_eq!(up.last().body, MAIL.as_bytes());
    // The same reply again counts for nothing.
    let again = reply(&s, ALICE, &format!("approve {code}")).await;
    assert!(!again.contains("counted"), "{again}");
    assert_eq!(up.requests().len(), 1, "applied once");
    assert!(s.violations().is_empty(), "{:?}", s.violations());
    c.replicas.remove(leader);
    c.stop_and_verify(REAL);
}
