//! Defer mode end to end: a real `airlock serve`, a real upstream over TLS, agents through the
//! proxy, decisions from the terminal. A deferred request is answered 428 at once; once
//! approved, the identical retry passes exactly once with the real credential.
mod support;
use support::*;

const REAL: &str = "sk-live-REAL-mail-d3f3r";

const CONFIG: &str = r#"
[[agents]]
name = "mailbot"
secrets = ["gmail"]

[[agents]]
name = "other"
secrets = ["gmail"]

[secrets.gmail]
hosts = ["localhost"]
header = "Authorization"
format = "Bearer {secret}"
placeholder = "airlock-gmail"

[people.alice]
roles = ["owner"]

[[rules]]
name = "sending mail needs a human"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/send"]
action = "approve"
approvers = ["owner"]
on_hold = "defer"
defer_window = "10m"
"#;

fn ok(gw: &Gateway, args: &[&str]) {
    let o = gw.control_cli(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}\n--- gateway log ---\n{}",
        text(&o),
        gw.logs()
    );
}

async fn send(gw: &Gateway, agent: &str, port: u16, body: &'static str) -> reqwest::Response {
    gw.client(agent)
        .post(format!("https://localhost:{port}/send"))
        .bearer_auth("airlock-gmail")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The 428's approval id, after checking the answer's shape.
async fn deferred(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 428);
    assert_eq!(r.headers()["retry-after"], "5");
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["approval"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["approval"]["state"], "pending");
    assert_eq!(v["approval"]["dashboard"], format!("/dashboard/approvals/{id}"));
    id
}

async fn status(gw: &Gateway, agent: &str, id: &str) -> (u16, serde_json::Value) {
    let r = gw
        .client(agent)
        .get(format!("http://airlock.internal/approvals/{id}"))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_request_passes_once_after_approval() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], CONFIG, &[("gmail", REAL)], &["mailbot", "other"]);

    // Answered at once, nothing upstream.
    let id = deferred(send(&gw, "mailbot", up.port, r#"{"to":"bob"}"#).await).await;
    assert!(!up.contacted());
    // A retry before the decision is the same approval, not a new one.
    let again = deferred(send(&gw, "mailbot", up.port, r#"{"to":"bob"}"#).await).await;
    assert_eq!(again, id);
    let list = text(&gw.control_cli(&["approvals", "list"]));
    assert_eq!(list.matches("POST localhost/send").count(), 1, "{list}");
    assert!(list.contains(&id), "{list}");

    // The creating agent sees the state; another agent sees nothing.
    let (code, v) = status(&gw, "mailbot", &id).await;
    assert_eq!((code, v), (200, serde_json::json!({ "state": "pending" })));
    assert_eq!(status(&gw, "other", &id).await.0, 404);
    assert_eq!(status(&gw, "mailbot", "0123456789abcdef00").await.0, 404);

    ok(&gw, &["approvals", "approve", &id, "--as", "alice"]);
    assert_eq!(status(&gw, "mailbot", &id).await.1["state"], "approved");
    // Another agent's identical bytes are not the approved request.
    let theirs = deferred(send(&gw, "other", up.port, r#"{"to":"bob"}"#).await).await;
    assert_ne!(theirs, id);
    assert!(!up.contacted());

    // The identical retry passes, with the real credential upstream.
    let r = send(&gw, "mailbot", up.port, r#"{"to":"bob"}"#).await;
    assert_eq!(r.status(), 200, "{}", gw.logs());
    let seen = up.last();
    assert_eq!(seen.body, br#"{"to":"bob"}"#);
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    assert_eq!(up.requests().len(), 1);

    // Exactly once: the next identical request asks again.
    let next = deferred(send(&gw, "mailbot", up.port, r#"{"to":"bob"}"#).await).await;
    assert_ne!(next, id);
    // A different body is a different approval.
    let other_body = deferred(send(&gw, "mailbot", up.port, r#"{"to":"eve"}"#).await).await;
    assert_ne!(other_body, next);
    assert_eq!(up.requests().len(), 1);

    // Denied: the retry is refused, and nothing goes upstream.
    ok(&gw, &["approvals", "deny", &other_body, "--as", "alice"]);
    let r = send(&gw, "mailbot", up.port, r#"{"to":"eve"}"#).await;
    assert_eq!(r.status(), 403);
    assert_eq!(status(&gw, "mailbot", &other_body).await.1["state"], "denied");
    assert_eq!(up.requests().len(), 1);

    let logs = gw.logs();
    assert!(!logs.contains(REAL), "the real secret in the gateway's log");
    let mut gw = gw;
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_deferral_is_refused_on_retry() {
    let up = upstream(true).await;
    let cfg = CONFIG.replace("on_hold = \"defer\"", "on_hold = \"defer\"\ntimeout = \"1s\"");
    let gw = Gateway::start(&[&up], &cfg, &[("gmail", REAL)], &["mailbot", "other"]);
    let mut events = Events::open(&gw).await;
    let id = deferred(send(&gw, "mailbot", up.port, r#"{"to":"bob"}"#).await).await;
    // Nobody decides: the approval expires by itself, with no agent connection held.
    assert_eq!(events.next("expired").await, id);
    assert_eq!(status(&gw, "mailbot", &id).await.1["state"], "expired");
    let r = send(&gw, "mailbot", up.port, r#"{"to":"bob"}"#).await;
    assert_eq!(r.status(), 403);
    assert!(!up.contacted());
    let mut gw = gw;
    gw.stop();
}

/// Deferred approvals hold no connection, but each sends cards to people: an agent may have at
/// most `max_held_per_agent` of them undecided; beyond it 429, and a retry of one it already has
/// is not a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_approvals_count_toward_max_held_per_agent() {
    let up = upstream(true).await;
    let cfg = format!("{CONFIG}\n[approvals]\nmax_held_per_agent = 2\n");
    let gw = Gateway::start(&[&up], &cfg, &[("gmail", REAL)], &["mailbot", "other"]);
    let mut events = Events::open(&gw).await;
    let a = deferred(send(&gw, "mailbot", up.port, r#"{"to":"a"}"#).await).await;
    deferred(send(&gw, "mailbot", up.port, r#"{"to":"b"}"#).await).await;
    let r = send(&gw, "mailbot", up.port, r#"{"to":"c"}"#).await;
    assert_eq!(r.status(), 429);
    let why = r.text().await.unwrap();
    assert!(why.contains("max_held_per_agent"), "{why}");
    // The ones it has are still answered; another agent has its own count.
    assert_eq!(deferred(send(&gw, "mailbot", up.port, r#"{"to":"a"}"#).await).await, a);
    deferred(send(&gw, "other", up.port, r#"{"to":"c"}"#).await).await;
    let list = text(&gw.control_cli(&["approvals", "list"]));
    assert_eq!(list.matches("POST localhost/send").count(), 3, "{list}");

    // Decided: its slot is free again once the approval's background task has ended.
    ok(&gw, &["approvals", "deny", &a, "--as", "alice"]);
    assert_eq!(events.next("denied").await, a);
    let mut status = 0;
    for _ in 0..100 {
        let r = send(&gw, "mailbot", up.port, r#"{"to":"c"}"#).await;
        status = r.status().as_u16();
        if status == 428 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 428);
    assert!(!up.contacted());
    let mut gw = gw;
    gw.stop();
}
