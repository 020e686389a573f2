//! Running the gateway: the control plane on its own listener, and fail-closed behaviour
//! when the audit log cannot be written (invariants 5 and 10).
mod support;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const POLICY: &str =
    "[[agents]]\nname = \"a\"\nsecrets = []\n[[rules]]\nname = \"all\"\nhosts = [\"localhost\"]\naction = \"allow\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_serves_health_metrics_and_an_authenticated_api() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], POLICY, &[], &["a"]);
    let r = gw
        .client("a")
        .get(format!("https://localhost:{}/", up.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let plain = reqwest::Client::new();
    let base = format!("http://{}", gw.control);
    let r = plain.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = plain
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("airlock_requests_total{decision=\"allow\"} 1"), "{m}");
    assert_eq!(
        plain.get(format!("{base}/api/v1/audit")).send().await.unwrap().status(),
        401
    );
    let token = std::fs::read_to_string(gw.dir.path().join("airlock-data/control.token")).unwrap();
    // Records are committed off the request path (group commit): wait for this one.
    let mut rows: Vec<serde_json::Value> = vec![];
    for _ in 0..200 {
        let r = plain
            .get(format!("{base}/api/v1/audit?n=10"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        rows = r.json().await.unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        rows.iter().any(|r| r["decision"] == "allow" && r["seq"] == 1),
        "{rows:?}"
    );
    // The proxy listener does not serve the control plane.
    let r = plain.get(format!("http://{}/healthz", gw.proxy)).send().await.unwrap();
    assert_ne!(r.status(), 200);
    // `airlock healthcheck` (the gateway image's HEALTHCHECK): 0 when ready, 1 when nothing answers.
    let o = gw.control_cli(&["healthcheck"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("200 ready"), "{}", text(&o));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let o = gw.cli(&["healthcheck", "--url", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no answer"), "{}", text(&o));
}

/// Holds an exclusive write lock on the database until stdin closes.
const LOCK: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_refused_while_the_audit_log_cannot_be_written_and_nothing_is_lost() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], POLICY, &[], &["a"]);
    let c = gw.client("a");
    let url = format!("https://localhost:{}/", up.port);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);

    let db = gw.dir.path().join("airlock-data/airlock.db");
    let mut lock = Command::new("python3")
        .arg("-c")
        .arg(LOCK)
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(lock.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    // This request is served; its record cannot be committed, so the writer turns unhealthy.
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    // Readiness (for load balancers) follows the audit log; liveness does not.
    let health = format!("http://{}/readyz", gw.control);
    let plain = reqwest::Client::new();
    let mut unhealthy = false;
    for _ in 0..300 {
        if plain.get(&health).send().await.unwrap().status() == 503 {
            unhealthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unhealthy, "the gateway never noticed the audit log was unwritable");
    let o = gw.control_cli(&["healthcheck"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "healthcheck passed while not ready: {}",
        text(&o)
    );
    assert!(text(&o).contains("503 audit log unavailable"), "{}", text(&o));
    let live = plain
        .get(format!("http://{}/healthz", gw.control))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "/healthz is liveness: the process is up");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(
        r.status(),
        503,
        "a request was forwarded while the audit log was unwritable"
    );
    let seen_before = up.requests().len();

    // Release the lock: the gateway recovers by itself and the held record lands.
    lock.stdin.take().unwrap().write_all(b"").unwrap();
    lock.wait().unwrap();
    let mut healthy = false;
    for _ in 0..300 {
        if plain.get(&health).send().await.unwrap().status() == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(healthy, "the gateway did not recover");
    let o = gw.control_cli(&["healthcheck"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(up.requests().len(), seen_before + 1);
    gw.stop();
    let o = gw.cli(&["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    let audit = gw.audit();
    let served = audit.iter().filter(|r| r["status"] == 200).count();
    assert_eq!(served, 3, "every served request has its record: {audit:?}");
}
