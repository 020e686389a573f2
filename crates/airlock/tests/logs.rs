//! The gateway's own log (`--log-format`): JSON lines a collector can parse, with stable keys,
//! and never a secret (invariant 2), whichever format.
mod support;
use base64::Engine;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Quotes and a backslash: JSON escapes them, so a leak is looked for in the decoded values too.
const REAL: &str = "sk-live-LOG\"9f8e\\7d6c5b4a";

/// A CONNECT tunnel as agent `a` to the upstream, then bytes that are neither TLS nor HTTP:
/// the gateway refuses the tunnel and logs it with the agent's name.
async fn refused_tunnel(gw: &Gateway, up: &Upstream) {
    let url = gw.url("a");
    let (creds, _) = url.trim_start_matches("http://").rsplit_once('@').unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(creds);
    let authority = format!("localhost:{}", up.port);
    let mut s = TcpStream::connect(gw.proxy).await.unwrap();
    let connect =
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nProxy-Authorization: Basic {auth}\r\n\r\n");
    s.write_all(connect.as_bytes()).await.unwrap();
    s.write_all(b"\x00\x01 not tls, not http\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    // The gateway answers the CONNECT, then closes the tunnel.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut sink)).await;
}

/// Traffic that makes the gateway log: an injected request, an exfiltration attempt, a refused
/// tunnel. Returns the gateway's stderr once it has stopped.
async fn traffic(args: &[&str]) -> String {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], ONE_SECRET, &[("k", REAL)], &["a"]);
    gw.stop();
    gw.serve_with(&[], args);
    gw.assert_injects(&up, REAL).await;
    let r = gw
        .client("a")
        .get(format!("https://127.0.0.1:{}/", up.port))
        .header("x-key", "airlock-k-placeholder")
        .send()
        .await;
    assert!(
        r.map(|r| r.status() != 200).unwrap_or(true),
        "the placeholder left its host"
    );
    refused_tunnel(&gw, &up).await;
    gw.stop();
    gw.logs()
}

fn assert_no_secret(logs: &str) {
    assert!(!logs.contains(REAL), "the secret is in the log");
    assert!(!logs.contains("sk-live-LOG"), "part of the secret is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_with_stable_keys_and_no_secret() {
    assert_json_logs(&traffic(&["--log-format", "json"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_by_default_when_stderr_is_not_a_terminal() {
    // No flag, no AIRLOCK_LOG_FORMAT: the test reads stderr through a pipe.
    assert_json_logs(&traffic(&[]).await);
}

fn assert_json_logs(logs: &str) {
    assert_no_secret(logs);
    let mut events = Vec::new();
    for line in logs.lines() {
        // The start and stop lines are printed for a person, not logged.
        if line.starts_with("airlock: ") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        let ts = v["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("no timestamp: {line}"));
        assert!(ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&v["level"].as_str().unwrap_or("")),
            "{line}"
        );
        let target = v["target"].as_str().unwrap_or_else(|| panic!("no target: {line}"));
        assert!(v["fields"].is_object(), "{line}");
        // airlock's own events always say what happened (some libraries' carry only fields).
        if target.starts_with("airlock") {
            assert!(v["fields"]["message"].is_string(), "{line}");
        }
        // The decoded values: an escaped secret would hide from the grep of the raw text.
        for (_, value) in v["fields"].as_object().unwrap() {
            assert!(!value.to_string().contains("sk-live-LOG"), "{line}");
            assert!(!value.as_str().unwrap_or("").contains(REAL), "{line}");
        }
        events.push(v);
    }
    let refused = events
        .iter()
        .find(|v| v["fields"]["message"] == "tunnel refused")
        .unwrap_or_else(|| panic!("no \"tunnel refused\" event:\n{logs}"));
    assert_eq!(refused["level"], "INFO");
    assert_eq!(refused["fields"]["agent"], "a");
    assert!(
        refused["fields"]["host"].as_str().unwrap().starts_with("localhost"),
        "{refused}"
    );
    assert!(refused["target"].as_str().unwrap().starts_with("airlock"), "{refused}");
    // One line per audit record, after its commit, with the same stable fields every time; its
    // seq is the record's place in the audit log.
    let audited: Vec<_> = events
        .iter()
        .filter(|v| v["target"] == "airlock::audit" && v["fields"]["message"] == "audited")
        .collect();
    let allowed = audited
        .iter()
        .find(|v| v["fields"]["event"] == "request" && v["fields"]["decision"] == "allow")
        .unwrap_or_else(|| panic!("no audited request:\n{logs}"));
    for key in ["agent", "method", "host", "path", "rule", "decision", "reason"] {
        assert!(allowed["fields"][key].is_string(), "{key} in {allowed}");
    }
    for key in ["seq", "status", "latency_us"] {
        assert!(allowed["fields"][key].is_u64(), "{key} in {allowed}");
    }
    assert_eq!(allowed["fields"]["agent"], "a");
    assert_eq!(allowed["fields"]["status"], 200);
    assert!(
        audited
            .iter()
            .any(|v| v["fields"]["event"] == "exfiltration" && v["fields"]["decision"] == "deny"),
        "the exfiltration attempt is not logged:\n{logs}"
    );
    let mut seqs: Vec<u64> = audited.iter().filter_map(|v| v["fields"]["seq"].as_u64()).collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "each record is logged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_are_for_people_and_carry_no_secret_either() {
    let logs = traffic(&["--log-format", "text"]).await;
    assert_no_secret(&logs);
    let line = logs
        .lines()
        .find(|l| l.contains("tunnel refused"))
        .unwrap_or_else(|| panic!("no \"tunnel refused\" line:\n{logs}"));
    assert!(!line.starts_with('{') && line.contains("INFO"), "{line}");
}

#[test]
fn an_unknown_log_format_is_refused() {
    let (_dir, config) = setup("");
    let o = airlock(&config, &["--log-format", "yaml", "policy", "check"], None, &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("json") && text(&o).contains("text"), "{}", text(&o));
}
