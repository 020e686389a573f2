//! What a policy change would do, before it goes live, through the real binary: the file's own
//! `[[tests]]` run by `policy check`, `policy test` replaying recorded traffic with the exit
//! codes a CI gate reads (0 unchanged, 1 changed, 2 invalid), and `policy diff` naming the held
//! approvals a reload would refuse.
mod support;
use support::*;

const BASE: &str = r#"
[[agents]]
name = "a"
secrets = []

[people.alice]
roles = ["owner"]

[[rules]]
name = "reads"
hosts = ["localhost"]
methods = ["GET"]
action = "allow"

[[rules]]
name = "deploys need a human"
hosts = ["localhost"]
paths = ["/deploy"]
action = "approve"
approvers = ["owner"]

[[rules]]
name = "sql reads"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/sql"]
body = { sql = ["read"] }
action = "allow"
"#;

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn policy_check_runs_the_files_own_tests_and_names_the_failing_case_by_line() {
    let cases = r#"
[[tests]]
name = "reads pass"
request = "GET https://localhost/anything"
agent = "a"
expect = "allow"
rule = "reads"

[[tests]]
name = "a DROP is not a read"
request = "POST https://localhost/sql"
headers = ["Content-Type: application/json"]
body = '{"query": "DROP TABLE users"}'
expect = "allow"
"#;
    let (_dir, config) = setup(&format!("[gateway]\nlisten = \"127.0.0.1:0\"\n{BASE}{cases}"));
    let o = airlock(&config, &["policy", "check"], None, &[]);
    let out = text(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("ok      ") && out.contains("reads pass"), "{out}");
    let line = format!("{}:", config.display());
    assert!(
        out.lines().any(|l| l.starts_with("FAILED")
            && l.contains(&line)
            && l.contains("a DROP is not a read: expected allow, got deny")),
        "{out}"
    );
    assert!(out.contains("1 of 2 tests failed"), "{out}");

    // Corrected, the file passes.
    let fixed = std::fs::read_to_string(&config).unwrap().replace(
        "body = '{\"query\": \"DROP TABLE users\"}'\nexpect = \"allow\"",
        "body = '{\"query\": \"DROP TABLE users\"}'\nexpect = \"deny\"",
    );
    std::fs::write(&config, fixed).unwrap();
    let o = airlock(&config, &["policy", "check"], None, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("2 tests passed"), "{}", text(&o));
}

async fn send(gw: &Gateway, port: u16, method: &str, path: &str, body: &str) -> u16 {
    let url = format!("https://localhost:{port}{path}");
    let req = gw
        .client("a")
        .request(method.parse().unwrap(), url)
        .header("content-type", "application/json")
        .body(body.to_string());
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_test_replays_recorded_traffic_through_a_new_policy_and_gates_with_its_exit_code() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], BASE, &[], &["a"]);
    let mut events = Events::open(&gw).await;
    for _ in 0..3 {
        assert_eq!(send(&gw, up.port, "GET", "/r?token=SECRETVALUE", "").await, 200);
    }
    assert_eq!(send(&gw, up.port, "POST", "/write", "{}").await, 403);
    assert_eq!(
        send(&gw, up.port, "POST", "/sql", r#"{"query": "SELECT 1"}"#).await,
        200
    );
    let held = {
        let req = gw
            .client("a")
            .post(format!("https://localhost:{}/deploy", up.port))
            .body("v1");
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    let id = events.next("pending").await;
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(held.await.unwrap(), 200);
    gw.stop();

    // The same policy: nothing changes.
    let o = gw.cli(&["policy", "test", "--since", "1h"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("replayed 6 requests") && text(&o).contains("nothing would change"),
        "{}",
        text(&o)
    );

    // Reads now need a human, writes are allowed, and SQL reads fall to the default.
    let src = std::fs::read_to_string(&gw.config).unwrap();
    let new = src
        .replace(
            "methods = [\"GET\"]\naction = \"allow\"",
            "methods = [\"GET\"]\naction = \"approve\"\napprovers = [\"owner\"]",
        )
        .replace("body = { sql = [\"read\"] }", "body = { sql = [\"write\"] }")
        + "\n[[rules]]\nname = \"writes\"\nhosts = [\"localhost\"]\npaths = [\"/write\"]\naction = \"allow\"\n";
    std::fs::write(&gw.config, new).unwrap();
    let o = gw.cli(&["policy", "test", "--since", "1h"]);
    let out = text(&o);
    assert_eq!(code(&o), 1, "{out}");
    for want in [
        "5 would be decided differently",
        "allow → approve, by rule reads: 3",
        "deny → allow, by rule writes: 1",
        "allow → deny, by rule (default): 1",
        "POST localhost/sql",
    ] {
        assert!(out.contains(want), "no {want:?} in {out}");
    }
    assert!(
        !out.contains("SECRETVALUE"),
        "query values are never replayed or shown: {out}"
    );
    let o = gw.cli(&["policy", "test", "--since", "1h", "--json"]);
    assert_eq!(code(&o), 1);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (j["replayed"].as_u64(), j["changed"].as_u64()),
        (Some(6), Some(5)),
        "{j}"
    );

    // A rule reading a header the audit does not keep makes the replay say so, not guess.
    let inexact = std::fs::read_to_string(&gw.config).unwrap()
        + "\n[[rules]]\nname = \"flagged\"\nhosts = [\"localhost\"]\nheaders = { x-flag = \"1\" }\naction = \"deny\"\n";
    std::fs::write(&gw.config, inexact).unwrap();
    let o = gw.cli(&["policy", "test", "--since", "1h", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["inexact"].as_u64(), Some(6), "{j}");

    // An invalid policy: exit 2.
    std::fs::write(&gw.config, "[[rules]]\nname = \"x\"\naction = \"sometimes\"\n").unwrap();
    let o = gw.cli(&["policy", "test"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("action"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_diff_names_the_rules_and_the_held_approvals_a_reload_would_refuse() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], BASE, &[], &["a"]);
    let mut events = Events::open(&gw).await;
    let held = {
        let req = gw
            .client("a")
            .post(format!("https://localhost:{}/deploy", up.port))
            .body("v1");
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    let id = events.next("pending").await;

    let o = gw.cli(&[
        "policy",
        "diff",
        gw.config.to_str().unwrap(),
        gw.config.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("held approvals: 1, of which a reload would refuse 0"),
        "{}",
        text(&o)
    );

    let new = gw.dir.path().join("new.toml");
    let src = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(
        &new,
        src.replace("name = \"deploys need a human\"", "name = \"deploys are fine\""),
    )
    .unwrap();
    let o = gw.cli(&["policy", "diff", gw.config.to_str().unwrap(), new.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(code(&o), 1, "{out}");
    assert!(out.contains("rules added:   deploys are fine"), "{out}");
    assert!(out.contains("rules removed: deploys need a human"), "{out}");
    assert!(
        out.contains("of which a reload would refuse 1") && out.contains(&id),
        "{out}"
    );
    assert!(!held.is_finished(), "diff changes nothing");
}
