//! Graceful stop through the real binary: SIGTERM stops accepting, lets requests in flight
//! finish within `gateway.drain_timeout`, answers agents whose requests are held for approval
//! with 503 and `Retry-After` (never forwarding them), flushes the audit log and exits 0; a
//! second signal stops at once.
mod support;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

const RULES: &str = "[[agents]]\nname = \"a\"\nsecrets = []\n\
    [people.alice]\nroles = [\"owner\"]\n\
    [[rules]]\nname = \"sends need a human\"\nhosts = [\"localhost\"]\nmethods = [\"POST\"]\n\
    action = \"approve\"\napprovers = [\"owner\"]\n\
    [[rules]]\nname = \"reads\"\nhosts = [\"localhost\"]\nmethods = [\"GET\"]\naction = \"allow\"\n";

/// A plain-HTTP upstream that reports each request head it reads and answers 200 "slow" only
/// when released (never, if the sender is dropped).
async fn slow_upstream() -> (Upstream, mpsc::UnboundedReceiver<()>, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let (release, released) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed before sending a whole head");
            head.extend_from_slice(&buf[..n]);
        }
        let _ = arrived.send(());
        if released.await.is_ok() {
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow";
            let _ = tcp.write_all(answer).await;
        } else {
            std::future::pending::<()>().await;
        }
    });
    let up = Upstream {
        port,
        ca_pem: None,
        seen: Default::default(),
        connections: Default::default(),
    };
    (up, arrivals, release)
}

/// `airlock serve` with `drain_timeout` in its `[gateway]` table and agent "a".
fn start(up: &Upstream, drain_timeout: &str) -> Gateway {
    let gateway = gateway_section(&[up]).replacen(
        "[gateway]\n",
        &format!("[gateway]\ndrain_timeout = \"{drain_timeout}\"\n"),
        1,
    );
    let (dir, config) = setup(&format!("{gateway}{RULES}"));
    let o = airlock(&config, &["agent", "add", "a"], None, &[]);
    assert!(o.status.success(), "agent add: {}", text(&o));
    let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    Gateway::serving(dir, config, vec![("a".into(), url)])
}

fn sigterm(gw: &Gateway) {
    let pid = gw.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

/// Waits until the gateway logged that it stopped accepting.
async fn until_draining(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gw.logs().contains("airlock: stopping: no new connections") {
        assert!(Instant::now() < deadline, "never started draining:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the serve process to exit (the log is complete afterwards).
async fn exited(gw: &mut Gateway) -> ExitStatus {
    let mut child = gw.child.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    gw.stop();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_0() {
    let (up, mut arrivals, release) = slow_upstream().await;
    let mut gw = start(&up, "30s");
    let client = gw.client("a");
    let url = format!("http://localhost:{}/slow", up.port);
    let agent = tokio::spawn(async move { client.get(url).send().await });
    arrivals.recv().await.unwrap();

    sigterm(&gw);
    until_draining(&gw).await;
    let refused = tokio::net::TcpStream::connect(gw.proxy).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "a new connection was not refused while draining: {refused:?}"
    );
    assert!(!agent.is_finished(), "the request in flight was cut");

    release.send(()).unwrap();
    let r = agent.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "slow");
    let status = exited(&mut gw).await;
    assert_eq!(status.code(), Some(0), "{}", gw.logs());
    assert!(gw.cli(&["audit", "verify"]).status.success());
    assert!(
        gw.audit()
            .iter()
            .any(|e| e["decision"] == "allow" && e["path"] == "/slow"),
        "{:#?}",
        gw.audit()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_a_held_request_503_with_retry_after_and_never_forwards_it() {
    let up = upstream(false).await;
    let mut gw = start(&up, "30s");
    let mut events = Events::open(&gw).await;
    let client = gw.client("a");
    let url = format!("http://localhost:{}/send", up.port);
    let agent = tokio::spawn(async move { client.post(url).body("to: everyone").send().await });
    let id = events.next("pending").await;

    sigterm(&gw);
    let r = agent.await.unwrap().unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("the gateway is stopping, so it was not forwarded"),
        "{body}"
    );
    let status = exited(&mut gw).await;
    assert_eq!(status.code(), Some(0), "{}", gw.logs());
    assert!(!up.contacted(), "a held request reached the upstream");

    let verify = gw.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    let audit = gw.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["kind"] == "approval" && e["decision"] == "abandoned" && e["detail"]["approval"] == id),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e["kind"] == "request" && e["decision"] == "deny" && e["path"] == "/send"),
        "{audit:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_drain_timeout_is_cut_and_the_gateway_exits_anyway() {
    let (up, mut arrivals, release) = slow_upstream().await;
    let mut gw = start(&up, "1s");
    let client = gw.client("a");
    let url = format!("http://localhost:{}/never", up.port);
    let agent = tokio::spawn(async move { client.get(url).send().await });
    arrivals.recv().await.unwrap();

    let began = Instant::now();
    sigterm(&gw);
    let status = exited(&mut gw).await;
    let took = began.elapsed();
    assert_eq!(status.code(), Some(0), "{}", gw.logs());
    assert!(took >= Duration::from_secs(1), "stopped before drain_timeout: {took:?}");
    assert!(
        took < Duration::from_secs(20),
        "drain_timeout did not bound the stop: {took:?}"
    );
    assert!(
        gw.logs()
            .contains("gateway.drain_timeout (1s) passed with 1 connection(s) open"),
        "{}",
        gw.logs()
    );
    assert!(agent.await.unwrap().is_err(), "the cut request got an answer");
    assert!(gw.cli(&["audit", "verify"]).status.success());
    drop(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_at_once_with_a_non_zero_exit() {
    let (up, mut arrivals, _release) = slow_upstream().await;
    let mut gw = start(&up, "1h");
    let client = gw.client("a");
    let url = format!("http://localhost:{}/never", up.port);
    let agent = tokio::spawn(async move { client.get(url).send().await });
    arrivals.recv().await.unwrap();

    sigterm(&gw);
    until_draining(&gw).await;
    sigterm(&gw);
    let status = exited(&mut gw).await;
    assert_eq!(status.code(), Some(1), "{}", gw.logs());
    assert!(
        gw.logs()
            .contains("stopped at once by a second signal; 1 connection(s) were cut"),
        "{}",
        gw.logs()
    );
    assert!(agent.await.unwrap().is_err());
    assert!(gw.cli(&["audit", "verify"]).status.success());
}
