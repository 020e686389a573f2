//! The operator's terminal surfaces through the real binary: every held request is listed
//! (an agent cannot bury one under newer ones), and agent-controlled text never reaches the
//! terminal raw — no ESC, no C1 control (U+009B is a CSI), no bidi override (invariant 8).
mod support;
use support::*;

use std::io::Read;

const CONFIG: &str = r#"
[[agents]]
name = "bot"

[people.alice]
roles = ["owner"]

[[rules]]
name = "writes need a human"
hosts = ["localhost"]
methods = ["POST"]
action = "approve"
approvers = ["owner"]
"#;

/// ESC starting a screen clear, a CSI as one C1 character, and a right-to-left override.
const HOSTILE: &str = "\u{1b}[2J\u{9b}31m\u{202e}gpj.exe";
const RAW: [char; 3] = ['\u{1b}', '\u{9b}', '\u{202e}'];

fn assert_inert(what: &str, out: &str) {
    for c in RAW {
        assert!(
            !out.contains(c),
            "{what}: U+{:04X} reached the terminal raw:\n{out}",
            c as u32
        );
    }
}

fn stdout(gw: &Gateway, args: &[&str]) -> String {
    let o = gw.control_cli(args);
    assert!(
        o.status.success(),
        "{args:?}: {}\n--- gateway log ---\n{}",
        text(&o),
        gw.logs()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn hold(gw: &Gateway, port: u16, i: usize, body: String) -> tokio::task::JoinHandle<()> {
    let c = gw.client("bot");
    tokio::spawn(async move {
        // Held until the gateway stops; the answer does not matter here.
        let _ = c
            .post(format!("https://localhost:{port}/v1/items/{i}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
    })
}

/// `approvals watch` without `--as`: what it prints before it starts following the stream.
fn watch_backlog(gw: &Gateway) -> String {
    let mut child = std::process::Command::new(BIN)
        .args(["--config", &gw.config.to_string_lossy(), "approvals", "watch"])
        .env("AIRLOCK_CONTROL_URL", format!("http://{}", gw.control))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout as it comes (60 cards overflow a pipe), until stderr says it is following.
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = out.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    });
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("watching"), "watch did not start: {line}");
    reader.join().unwrap()
}

/// 60 held requests: the CLI table, `--json`, `watch` and `show` list the oldest (whose
/// body is hostile) among all 60, oldest first, and print its text inert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_held_requests_are_all_listed_and_print_inert() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], CONFIG, &[], &["bot"]);
    let mut events = Events::open(&gw).await;
    let mut agents = vec![hold(&gw, up.port, 0, format!(r#"{{"note":"{HOSTILE}"}}"#))];
    let oldest = events.next("pending").await;
    for i in 1..60 {
        agents.push(hold(&gw, up.port, i, format!(r#"{{"n":{i}}}"#)));
    }
    for _ in 1..60 {
        events.next("pending").await;
    }

    let table = stdout(&gw, &["approvals", "list"]);
    assert_inert("approvals list", &table);
    assert!(
        table.contains(&oldest),
        "the oldest held request is not in the table:\n{table}"
    );
    assert_eq!(table.lines().count(), 61, "a header and 60 rows:\n{table}");

    let json = stdout(&gw, &["approvals", "list", "--json"]);
    assert_inert("approvals list --json", &json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((v["total"].as_u64(), v["not_shown"].as_u64()), (Some(60), Some(0)));
    let listed = v["approvals"].as_array().unwrap();
    assert_eq!(listed.len(), 60);
    let created: Vec<u64> = listed
        .iter()
        .map(|a| a["card"]["created_ms"].as_u64().unwrap())
        .collect();
    assert!(
        created.is_sorted(),
        "pending requests are listed oldest first: {created:?}"
    );
    let first = listed
        .iter()
        .find(|a| a["card"]["id"] == oldest.as_str())
        .expect("the oldest is listed");
    assert_eq!(first["card"]["created_ms"].as_u64(), Some(created[0]));
    // The escapes are JSON's: the value read back is exactly what the agent sent.
    assert!(first["card"]["body"]["text"].as_str().unwrap().contains(HOSTILE));

    let shown = stdout(&gw, &["approvals", "show", &oldest]);
    assert_inert("approvals show", &shown);
    assert!(shown.contains("<U+001B>[2J<U+009B>31m<U+202E>gpj.exe"), "{shown}");

    let backlog = watch_backlog(&gw);
    assert_inert("approvals watch", &backlog);
    assert!(backlog.contains(&oldest), "watch did not show the oldest held request");
    assert_eq!(backlog.matches("decide with: airlock approvals approve").count(), 60);
    drop(gw);
    for a in agents {
        let _ = a.await;
    }
}

/// A hostile path reaches the audit log through a deny reason (the policy reads the
/// percent-decoded path): `audit tail` prints it inert, as text and as JSON, and
/// `policy explain` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_tail_and_policy_explain_print_agent_text_inert() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], CONFIG, &[], &["bot"]);
    let path = "/x%1B%5B2J%C2%9B31m%E2%80%AEgpj.exe";
    let r = gw
        .client("bot")
        .get(format!("https://localhost:{}{path}", up.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    gw.stop();

    let o = gw.cli(&["audit", "tail"]);
    assert!(o.status.success(), "{}", text(&o));
    let tail = String::from_utf8_lossy(&o.stdout);
    assert_inert("audit tail", &tail);
    assert!(tail.contains("/x<U+001B>[2J<U+009B>31m<U+202E>gpj.exe"), "{tail}");

    let o = gw.cli(&["audit", "tail", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let json = String::from_utf8_lossy(&o.stdout);
    assert_inert("audit tail --json", &json);
    let reasons: Vec<String> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains(&format!("/x{HOSTILE}"))),
        "{reasons:?}"
    );

    let url = format!("https://localhost{path}");
    let o = gw.cli(&["policy", "explain", "GET", &url, "--agent", "bot"]);
    assert!(o.status.success(), "{}", text(&o));
    let explained = String::from_utf8_lossy(&o.stdout);
    assert_inert("policy explain", &explained);
    assert!(explained.contains("<U+009B>"), "{explained}");
}
