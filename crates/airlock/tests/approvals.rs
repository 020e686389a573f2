//! Human approval end to end (invariants 5–7): a real `airlock serve`, a real upstream over
//! TLS, agents through the proxy, and decisions from the terminal (`airlock approvals`).
mod support;
use support::*;

const REAL: &str = "sk-live-REAL-mail-7a6b5c";

fn config(extra: &str) -> String {
    format!(
        r#"
[[agents]]
name = "mailbot"
secrets = ["gmail"]

[secrets.gmail]
hosts = ["localhost"]
header = "Authorization"
format = "Bearer {{secret}}"
placeholder = "airlock-gmail"

[people.alice]
roles = ["owner", "senior"]

[people.bob]
roles = ["senior"]

[people.mallory]
roles = ["intern"]

[approvals]
max_body = 4096

[[rules]]
name = "sending mail needs a human"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/gmail/v1/users/*/messages/send"]
action = "approve"
approvers = ["owner"]
grant = "15m"

[[rules]]
name = "deploys need two"
hosts = ["localhost"]
paths = ["/deploy"]
action = "approve"
approvers = ["senior"]
quorum = 2

[[rules]]
name = "reads"
hosts = ["localhost"]
methods = ["GET"]
action = "allow"
{extra}
"#
    )
}

/// Runs an `airlock approvals …` command that must succeed; on failure shows why, with the
/// gateway's log.
fn ok(gw: &Gateway, args: &[&str]) {
    let o = gw.control_cli(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}\n--- gateway log ---\n{}",
        text(&o),
        gw.logs()
    );
}

fn send_mail(gw: &Gateway, port: u16, body: &'static str) -> tokio::task::JoinHandle<reqwest::Response> {
    let c = gw.client("mailbot");
    tokio::spawn(async move {
        c.post(format!("https://localhost:{port}/gmail/v1/users/me/messages/send"))
            .bearer_auth("airlock-gmail")
            .header("content-type", "application/json")
            .header("x-request-note", "quarterly report")
            .body(body)
            .send()
            .await
            .unwrap()
    })
}

const MAIL: &str = r#"{"raw":"VG86IGJvYkBleGFtcGxlLmNvbQ0KU3ViamVjdDogUXVhcnRlcmx5IG51bWJlcnMNCg0KSGkgQm9iIQ"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_until_approved_then_forwarded_byte_for_byte() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let mut events = Events::open(&gw).await;
    let agent = send_mail(&gw, up.port, MAIL);
    let id = events.next("pending").await;
    // Held: nothing went upstream, the agent is still waiting.
    assert!(!up.contacted());
    assert!(!agent.is_finished());

    let list = gw.control_cli(&["approvals", "list"]);
    assert!(text(&list).contains(&id), "{}", text(&list));
    let show = gw.control_cli(&["approvals", "show", &id]);
    let card = text(&show);
    assert!(show.status.success(), "{card}");
    // The terminal card shows what will really happen, from the gateway's own parse (the
    // Gmail summary needs Gmail's host; it is covered by airlock-channels' card tests).
    for want in [
        "/gmail/v1/users/me/messages/send",
        "quarterly report",
        "VG86IGJvYkBleGFtcGxl",
        "mailbot",
        "sending mail needs a human",
    ] {
        assert!(card.contains(want), "card lacks {want:?}:\n{card}");
    }
    assert!(!card.contains(REAL), "a real secret on the card");

    // Someone without the role changes nothing and is told so.
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "mallory"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("do not hold a role"), "{}", text(&o));
    assert!(!up.contacted());

    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 200);
    // Exactly the held bytes, with the credential injected into its slot.
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/gmail/v1/users/me/messages/send");
    assert_eq!(seen.body, MAIL.as_bytes());
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    assert_eq!(seen.header("x-request-note"), Some("quarterly report"));
    assert_eq!(up.requests().len(), 1);
    // Decided once: a later vote is refused.
    let o = gw.control_cli(&["approvals", "deny", &id, "--as", "alice"]);
    assert!(text(&o).contains("already decided"), "{}", text(&o));

    let mut gw = gw;
    gw.stop();
    let audit = gw.audit();
    let kinds: Vec<(String, String)> = audit
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("approval", "held"),
        ("vote", "refused"),
        ("vote", "approve"),
        ("approval", "approved"),
    ] {
        assert!(
            kinds.iter().any(|k| k.0 == want.0 && k.1 == want.1),
            "no {want:?} in {kinds:?}"
        );
    }
    let all = serde_json::to_string(&audit).unwrap();
    assert!(!all.contains(REAL));
    assert!(all.contains("alice voted via cli"));
    assert!(gw.cli(&["audit", "verify"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_answers_403_with_the_rule_and_nothing_goes_out() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let mut events = Events::open(&gw).await;
    let agent = send_mail(&gw, up.port, MAIL);
    let id = events.next("pending").await;
    ok(&gw, &["approvals", "deny", &id, "--as", "alice"]);
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["airlock"]["rule"], "sending mail needs a human");
    assert!(
        body["airlock"]["reason"].as_str().unwrap().contains("denied by alice"),
        "{body}"
    );
    assert!(!up.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_of_two_distinct_people() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let mut events = Events::open(&gw).await;
    let c = gw.client("mailbot");
    let url = format!("https://localhost:{}/deploy", up.port);
    let agent = tokio::spawn(async move { c.post(url).body("ship it").send().await.unwrap() });
    let id = events.next("pending").await;
    ok(&gw, &["approvals", "approve", &id, "--as", "alice"]);
    // The same person twice is still one vote.
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(text(&o).contains("already voted"), "{}", text(&o));
    assert!(!up.contacted() && !agent.is_finished());
    ok(&gw, &["approvals", "approve", &id, "--as", "bob"]);
    assert_eq!(agent.await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_to_hold_is_denied_never_approved_blind() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let big: &'static str = Box::leak("x".repeat(100_000).into_boxed_str());
    let r = send_mail(&gw, up.port, big).await.unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["airlock"]["reason"]
            .as_str()
            .unwrap()
            .contains("never approved blind"),
        "{body}"
    );
    assert!(!up.contacted());
    let list = gw.control_cli(&["approvals", "list", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        (&v["approvals"], &v["total"]),
        (&serde_json::json!([]), &serde_json::json!(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_surface_can_show_whole_is_denied_never_held() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let c = gw.client("mailbot");
    let url = format!("https://localhost:{}/gmail/v1/users/me/messages/send", up.port);
    // An encoding nobody can decode, and a body that claims gzip but is not.
    for (encoding, body) in [
        ("x-custom", &b"secret recipient"[..]),
        ("gzip", &b"not gzip at all"[..]),
    ] {
        let r = c
            .post(&url)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{encoding}");
        let v: serde_json::Value = r.json().await.unwrap();
        let reason = v["airlock"]["reason"].as_str().unwrap_or_default().to_string();
        assert!(reason.contains("never approved blind"), "{encoding}: {reason}");
    }
    assert!(!up.contacted());
    let list = gw.control_cli(&["approvals", "list", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["total"], serde_json::json!(0), "nothing was held: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_decision_before_the_timeout_is_a_deny() {
    let up = upstream(true).await;
    let extra = r#"
[[rules]]
name = "quick"
hosts = ["localhost"]
paths = ["/quick"]
action = "approve"
approvers = ["owner"]
timeout = "1s"
"#;
    let gw = Gateway::start(&[&up], &config(extra), &[("gmail", REAL)], &["mailbot"]);
    let r = gw
        .client("mailbot")
        .post(format!("https://localhost:{}/quick", up.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["airlock"]["reason"]
            .as_str()
            .unwrap()
            .contains("before the timeout"),
        "{body}"
    );
    assert!(!up.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_abandons_what_was_held_and_never_forwards_it() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let mut events = Events::open(&gw).await;
    let agent = send_mail(&gw, up.port, MAIL);
    let id = events.next("pending").await;
    // A crash: no shutdown path runs.
    let mut child = gw.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(agent.await.is_err() || !up.contacted());
    gw.serve(&[]);
    let o = gw.control_cli(&["approvals", "list", "--all", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = v["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["card"]["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["status"]["state"], "abandoned");
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!up.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_lets_matching_requests_through_until_revoked() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let mut events = Events::open(&gw).await;
    let agent = send_mail(&gw, up.port, MAIL);
    let id = events.next("pending").await;
    ok(&gw, &["approvals", "approve", &id, "--as", "alice", "--grant"]);
    assert_eq!(agent.await.unwrap().status(), 200);
    // The next matching request goes straight through: no card, no wait.
    assert_eq!(send_mail(&gw, up.port, MAIL).await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), 2);
    let o = gw.control_cli(&["approvals", "grants"]);
    let listing = text(&o);
    assert!(
        listing.contains("sending mail needs a human") && listing.contains("by alice"),
        "{listing}"
    );
    let grant_id = listing.split_whitespace().next().unwrap().to_string();
    ok(&gw, &["approvals", "revoke", &grant_id, "--as", "alice"]);
    // Revoked: held again.
    let agent = send_mail(&gw, up.port, MAIL);
    let id2 = events.next("pending").await;
    assert_ne!(id, id2);
    ok(&gw, &["approvals", "deny", &id2, "--as", "alice"]);
    assert_eq!(agent.await.unwrap().status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_hangs_up_withdraws_its_request() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let mut events = Events::open(&gw).await;
    let agent = send_mail(&gw, up.port, MAIL);
    let id = events.next("pending").await;
    agent.abort();
    let gone = events.next("withdrawn").await;
    assert_eq!(gone, id);
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(!o.status.success());
    assert!(!up.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn person_passwd_enables_dashboard_sign_in() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let o = airlock(
        &gw.config,
        &["person", "passwd", "nobody"],
        Some(b"correct horse battery\n"),
        &[],
    );
    assert!(!o.status.success() && text(&o).contains("not a person"), "{}", text(&o));
    let o = airlock(&gw.config, &["person", "passwd", "alice"], Some(b"short\n"), &[]);
    assert!(
        !o.status.success() && text(&o).contains("12 characters"),
        "{}",
        text(&o)
    );
    let o = airlock(
        &gw.config,
        &["person", "passwd", "alice"],
        Some(b"correct horse battery\n"),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = format!("http://{}/dashboard/login", gw.control);
    let r = c
        .post(&login)
        .form(&[("person", "alice"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert!(r.headers().get("set-cookie").is_some());
    let r = c
        .post(&login)
        .form(&[("person", "alice"), ("password", "wrong horse battery")])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    assert!(!gw.logs().contains("correct horse battery"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_watch_prompts_and_decides() {
    use std::io::{Read, Write};
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &config(""), &[("gmail", REAL)], &["mailbot"]);
    let mut watch = std::process::Command::new(BIN)
        .args([
            "--config",
            &gw.config.to_string_lossy(),
            "approvals",
            "watch",
            "--as",
            "alice",
        ])
        .env("AIRLOCK_CONTROL_URL", format!("http://{}", gw.control))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `watch` says on stderr when it is following the event stream.
    let mut err = std::io::BufReader::new(watch.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("watching"), "{line}");
    let agent = send_mail(&gw, up.port, MAIL);
    let mut out = watch.stdout.take().unwrap();
    // Read the card and the prompt as they arrive, then answer it.
    let shown = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut b = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("[s]kip: ") {
            assert_eq!(out.read(&mut b).unwrap(), 1, "watch ended early");
            seen.push(b[0]);
        }
        (String::from_utf8_lossy(&seen).into_owned(), out)
    });
    let (shown, _out) = tokio::time::timeout(std::time::Duration::from_secs(30), shown)
        .await
        .expect("no prompt")
        .unwrap();
    assert!(
        shown.contains("sending mail needs a human") && shown.contains("approve as alice?"),
        "{shown}"
    );
    let mut stdin = watch.stdin.take().unwrap();
    stdin.write_all(b"a\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(agent.await.unwrap().status(), 200);
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(up.requests().len(), 1);
}
