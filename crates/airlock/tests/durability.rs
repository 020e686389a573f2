//! Nothing decided is lost (invariant 10): the gateway is killed with SIGKILL at the instant a
//! side effect leaves it — a held request reaching the upstream, a vote acknowledged to the
//! voter — and the audit chain read back from its database afterwards holds the records of
//! what happened, and still verifies.
mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use support::*;

const CONFIG: &str = r#"
[[agents]]
name = "bot"

[people.alice]
roles = ["senior"]

[people.bob]
roles = ["senior"]

[[rules]]
name = "sending needs a human"
hosts = ["localhost"]
paths = ["/send"]
action = "approve"
approvers = ["senior"]

[[rules]]
name = "deploys need two"
hosts = ["localhost"]
paths = ["/deploy"]
action = "approve"
approvers = ["senior"]
quorum = 2
"#;

/// SIGKILL, synchronously: the process is gone when this returns.
fn kill9(pid: u32) {
    let s = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill is required by the tests");
    assert!(s.success(), "kill -KILL {pid} failed");
}

/// Holds a POST to `path` by agent `bot` (the agent's own future is left running).
fn held(gw: &Gateway, port: u16, path: &str) -> tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>> {
    let c = gw.client("bot");
    let url = format!("https://localhost:{port}{path}");
    tokio::spawn(async move { c.post(url).body("payload").send().await })
}

async fn vote(gw: &Gateway, id: &str, person: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/api/v1/approvals/{id}/vote", gw.control))
        .bearer_auth(gw.control_token())
        .json(&serde_json::json!({ "person": person, "decision": "approve" }))
        .send()
        .await
        .unwrap()
}

fn has(audit: &[serde_json::Value], kind: &str, decision: &str, id: &str) -> bool {
    audit
        .iter()
        .any(|r| r["kind"] == kind && r["decision"] == decision && r["detail"]["approval"] == id)
}

/// After SIGKILL: the chain verifies, and holds `want` records of approval `id`.
fn assert_after_crash(gw: &mut Gateway, id: &str, want: &[(&str, &str)]) {
    if let Some(mut c) = gw.child.take() {
        let _ = c.wait();
    }
    let audit = gw.audit();
    for (kind, decision) in want {
        assert!(
            has(&audit, kind, decision, id),
            "no {kind}/{decision} record of approval {id} after kill -9:\n{}\n--- gateway log ---\n{}",
            serde_json::to_string_pretty(&audit).unwrap(),
            gw.logs()
        );
    }
    let v = gw.cli(&["audit", "verify"]);
    assert!(v.status.success(), "{}", text(&v));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_as_an_approved_request_reaches_the_upstream_its_records_are_in_the_chain() {
    let pid = Arc::new(AtomicU32::new(0));
    let p = pid.clone();
    // The upstream kills the gateway the moment the released request arrives, before answering.
    let custom: Custom = Arc::new(move |seen: &Seen| {
        if seen.target == "/send" {
            kill9(p.load(Ordering::SeqCst));
        }
        None
    });
    let up = upstream_custom(true, Some(custom)).await;
    let mut gw = Gateway::start(&[&up], CONFIG, &[], &["bot"]);
    pid.store(gw.child.as_ref().unwrap().id(), Ordering::SeqCst);
    let mut events = Events::open(&gw).await;
    let agent = held(&gw, up.port, "/send");
    let id = events.next("pending").await;
    // The vote may or may not be answered: the gateway dies as it forwards.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), vote(&gw, &id, "alice")).await;
    let r = agent.await.unwrap();
    assert!(r.is_err(), "the gateway died before answering the agent: {r:?}");
    assert_eq!(up.requests().len(), 1, "the released request reached the upstream");
    assert_after_crash(
        &mut gw,
        &id,
        &[("vote", "approve"), ("approval", "approved"), ("request", "approve")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_as_a_vote_is_acknowledged_the_vote_is_in_the_chain() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], CONFIG, &[], &["bot"]);
    let mut events = Events::open(&gw).await;
    let _agent = held(&gw, up.port, "/deploy");
    let id = events.next("pending").await;
    // One of two votes: counted and acknowledged, nothing forwarded.
    let r = vote(&gw, &id, "bob").await;
    // Child::kill is one kill(2) call: no time for a queued record to land meanwhile.
    gw.child.as_mut().unwrap().kill().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert!(!up.contacted());
    assert_after_crash(&mut gw, &id, &[("vote", "approve")]);
}
