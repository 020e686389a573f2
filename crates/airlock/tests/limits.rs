//! The gateway's limits on what agents' connections can do, through real sockets: it never
//! dials itself (invariants 1 and 9), closes stalled and slow connections, caps the requests
//! one agent holds for approval, and answers 431 to an oversized head on every listener and
//! protocol. Timeouts are configured short and each test awaits the close itself (a socket
//! reading EOF); the 20 s bound only turns a connection that is never closed into a failure.
mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use support::replicas::{init, pg};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a test waits for the gateway to close a connection before calling it never closed.
const NEVER: Duration = Duration::from_secs(20);

/// Agents `dev` and `other`, without secrets.
const AGENTS: &str = r#"
[[agents]]
name = "dev"
secrets = []

[[agents]]
name = "other"
secrets = []
"#;

/// [`AGENTS`], and every request to the loopback names allowed.
const OPEN: &str = r#"
[[rules]]
name = "loopback"
hosts = ["localhost", "127.0.0.1", "127.0.0.2"]
action = "allow"
"#;

/// `[gateway]` with all of 127.0.0.0/8 allowed (as the README permits) and `up` trusted.
fn loopback_gateway(listen: &str) -> String {
    format!(
        "[gateway]\nlisten = \"{listen}\"\ncontrol = \"127.0.0.1:0\"\ndata_dir = \"./airlock-data\"\n\
         allow_private = [\"127.0.0.0/8\"]\nupstream_ca = [\"upstream-0.pem\"]\n"
    )
}

/// Serves `body` from an initialized `dir`, trusting `up` and issuing `agents`.
fn serve_config(dir: tempfile::TempDir, body: &str, up: &Upstream, agents: &[&str]) -> Gateway {
    let config = dir.path().join("airlock.toml");
    std::fs::write(&config, body).unwrap();
    std::fs::write(dir.path().join("upstream-0.pem"), up.ca_pem.as_ref().unwrap()).unwrap();
    let urls = agents
        .iter()
        .map(|a| {
            let o = airlock(&config, &["agent", "add", a], None, &[]);
            assert!(o.status.success(), "agent add: {}", text(&o));
            let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
            (a.to_string(), url)
        })
        .collect();
    Gateway::serving(dir, config, urls)
}

/// A proxy client for `agent` that reaches the gateway on 127.0.0.1 whatever it listens on.
fn client(gw: &Gateway, agent: &str) -> reqwest::Client {
    let url = gw.url(agent).replace("@0.0.0.0:", "@127.0.0.1:");
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(url).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&gw.ca_pem()).unwrap())
        .build()
        .unwrap()
}

/// The gateway's answer: status and the reason in its JSON body.
async fn answer(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let url = r.url().clone();
    let decided = r.headers().get("x-airlock-decision").is_some();
    let body = r.text().await.unwrap();
    assert!(decided, "not the gateway's own answer to {url} ({status}): {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    (status, v["airlock"]["reason"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_never_dials_its_own_listeners_whatever_allow_private_says() {
    let up = upstream(true).await;
    // On 0.0.0.0 the proxy listens on every local address: each of them is refused.
    let (dir, _) = setup("");
    let mut gw = serve_config(
        dir,
        &format!("{}{AGENTS}{OPEN}", loopback_gateway("0.0.0.0:0")),
        &up,
        &["dev"],
    );
    let c = client(&gw, "dev");
    let (proxy, control) = (gw.proxy.port(), gw.control.port());
    for (url, what) in [
        (format!("http://127.0.0.1:{control}/healthz"), "control plane"),
        (format!("http://localhost:{control}/metrics"), "control plane"),
        (format!("https://127.0.0.1:{control}/"), "control plane"),
        (format!("http://127.0.0.1:{proxy}/"), "proxy listener"),
        (format!("http://127.0.0.2:{proxy}/"), "proxy listener"),
    ] {
        let (status, reason) = answer(c.get(&url).send().await.unwrap()).await;
        assert_eq!(status, 403, "{url}: {reason}");
        assert!(reason.contains(&format!("airlock's own {what}")), "{url}: {reason}");
    }
    // The dashboard's login form, posted through the proxy, is refused the same way.
    let r = c
        .post(format!("http://127.0.0.1:{control}/dashboard/login"))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(r).await.0, 403);
    // Positive control: another loopback upstream, allowed by the same allow_private, works.
    let r = c
        .get(format!("https://localhost:{}/fine", up.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests().len(), 1);

    gw.stop();
    let refused: Vec<_> = gw
        .audit()
        .into_iter()
        .filter(|r| r["reason"].as_str().unwrap_or("").contains("airlock's own"))
        .collect();
    assert_eq!(refused.len(), 6, "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|r| r["status"] == 403 && r["decision"] == "deny" && r["agent"] == "dev")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_never_dials_its_local_postgresql_store() {
    let up = upstream(true).await;
    let db = pg::Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    let o = init(dir.path(), &db.url);
    assert!(o.status.success(), "{}", text(&o));
    let body = format!(
        "{}{AGENTS}{OPEN}\n[store]\nurl = {:?}\n",
        loopback_gateway("127.0.0.1:0"),
        db.url
    );
    let gw = serve_config(dir, &body, &up, &["dev"]);
    let c = client(&gw, "dev");
    // The server is on this host: every local address on its port is refused.
    for host in ["127.0.0.1", "127.0.0.2", "localhost"] {
        let url = format!("http://{host}:5432/");
        let (status, reason) = answer(c.get(&url).send().await.unwrap()).await;
        assert_eq!(status, 403, "{url}: {reason}");
        assert!(reason.contains("airlock's own store"), "{url}: {reason}");
    }
    let r = c.get(format!("https://localhost:{}/", up.port)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Opens a CONNECT tunnel to `authority` as `agent` on a raw socket.
async fn raw_tunnel(gw: &Gateway, agent: &str, authority: &str) -> TcpStream {
    let url = gw.url(agent);
    let (creds, _) = url.trim_start_matches("http://").rsplit_once('@').unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(creds);
    let mut s = TcpStream::connect(gw.proxy).await.unwrap();
    let connect =
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nProxy-Authorization: Basic {auth}\r\n\r\n");
    s.write_all(connect.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "the proxy closed during CONNECT");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    s
}

/// Reads until the gateway closes the connection (EOF or reset); what it sent first is returned.
async fn closed_by_gateway<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let read_all = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(NEVER, read_all)
        .await
        .expect("the gateway never closed the connection")
}

/// TLS to the gateway inside `tcp`, offering only `alpn`, trusting the airlock CA.
async fn agent_tls(gw: &Gateway, tcp: TcpStream, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in airlock_tls::load_pem_certs(&gw.ca_pem()).unwrap() {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the gateway");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_stalled_in_its_tls_handshake_is_closed_and_audited() {
    let up = upstream(true).await;
    let rest = format!("handshake_timeout = \"1s\"\n{AGENTS}{OPEN}");
    let mut gw = Gateway::start(&[&up], &rest, &[], &["dev"]);
    let authority = format!("localhost:{}", up.port);
    // A TLS record header announcing a ClientHello that never comes.
    let mut s = raw_tunnel(&gw, "dev", &authority).await;
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    closed_by_gateway(&mut s).await;
    // A tunnel that sends nothing at all.
    let mut s = raw_tunnel(&gw, "dev", &authority).await;
    closed_by_gateway(&mut s).await;
    assert!(!up.contacted());
    gw.stop();
    let reasons: Vec<String> = gw
        .audit()
        .iter()
        .filter(|r| r["kind"] == "tunnel")
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    for want in [
        "no whole TLS ClientHello arrived within 1s",
        "nothing was sent within 1s",
    ] {
        assert!(reasons.iter().any(|r| r.contains(want)), "no {want:?} in {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_silent_after_its_tls_handshake_is_closed_h1_and_h2() {
    let up = upstream(true).await;
    let rest = format!("idle_timeout = \"1s\"\n{AGENTS}{OPEN}");
    let gw = Gateway::start(&[&up], &rest, &[], &["dev"]);
    let authority = format!("localhost:{}", up.port);
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let tcp = raw_tunnel(&gw, "dev", &authority).await;
        let mut tls = agent_tls(&gw, tcp, alpn).await;
        closed_by_gateway(&mut tls).await;
    }
    // A real HTTP/2 client: one request, then an idle connection it keeps open (it answers
    // the gateway's pings) until the gateway closes it.
    let tcp = raw_tunnel(&gw, "dev", &authority).await;
    let tls = agent_tls(&gw, tcp, b"h2").await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let req = http::Request::get(format!("https://{authority}/h2"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    tokio::time::timeout(NEVER, connection)
        .await
        .expect("the gateway never closed the idle HTTP/2 connection")
        .unwrap()
        .unwrap();
    assert!(sender.is_closed());
    assert_eq!(up.requests().len(), 1);
}

/// Sends `start`, then one more header line every 200 ms, until the gateway closes.
async fn trickle_until_closed<S: AsyncRead + AsyncWrite + Unpin>(s: S, start: &[u8]) {
    let (mut r, mut w) = tokio::io::split(s);
    w.write_all(start).await.unwrap();
    let trickle = async {
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            every.tick().await;
            if w.write_all(b"X-Slow: a\r\n").await.is_err() {
                // Written into a closed connection: the read below sees the close.
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = closed_by_gateway(&mut r) => {}
        () = trickle => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_closed_on_the_listener_and_in_a_tunnel_h1_and_h2() {
    let up = upstream(true).await;
    let plain = upstream(false).await;
    // The idle limit stays long: only the head's own limit can close these.
    let rest = format!("header_timeout = \"1s\"\nidle_timeout = \"1h\"\n{AGENTS}{OPEN}");
    let gw = Gateway::start(&[&up, &plain], &rest, &[], &["dev"]);
    let url = gw.url("dev");
    let (creds, _) = url.trim_start_matches("http://").rsplit_once('@').unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(creds);
    let s = TcpStream::connect(gw.proxy).await.unwrap();
    let head = format!(
        "GET http://localhost:{}/ HTTP/1.1\r\nHost: localhost:{}\r\nProxy-Authorization: Basic {auth}\r\n",
        plain.port, plain.port
    );
    trickle_until_closed(s, head.as_bytes()).await;

    let tcp = raw_tunnel(&gw, "dev", &format!("localhost:{}", up.port)).await;
    let tls = agent_tls(&gw, tcp, b"http/1.1").await;
    let head = format!("GET / HTTP/1.1\r\nHost: localhost:{}\r\n", up.port);
    trickle_until_closed(tls, head.as_bytes()).await;

    // HTTP/2: a HEADERS frame whose CONTINUATION never comes. Until its head is done the
    // peer cannot send anything else, not even a ping's answer.
    let tcp = raw_tunnel(&gw, "dev", &format!("localhost:{}", up.port)).await;
    let mut tls = agent_tls(&gw, tcp, b"h2").await;
    tls.write_all(&h2_unfinished_head(&format!("localhost:{}", up.port)))
        .await
        .unwrap();
    closed_by_gateway(&mut tls).await;
    assert!(!up.contacted() && !plain.contacted());
}

/// The HTTP/2 preface, an empty SETTINGS frame, and a HEADERS frame for `GET https://{authority}/`
/// without END_HEADERS: a head still waiting for its CONTINUATION.
fn h2_unfinished_head(authority: &str) -> Vec<u8> {
    // HPACK: :method GET, :scheme https, :path / (static table), :authority literal (index 1).
    let mut block = vec![0x82, 0x87, 0x84, 0x41, authority.len() as u8];
    block.extend_from_slice(authority.as_bytes());
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let len = (block.len() as u32).to_be_bytes();
    // type HEADERS, flags END_STREAM only, stream 1.
    out.extend_from_slice(&[len[1], len[2], len[3], 0x1, 0x1, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    out
}

/// With [`AGENTS`]: a rule holding requests for alice, and room for two per agent.
const HOLDING: &str = r#"
[approvals]
max_held_per_agent = 2

[people.alice]
roles = ["owner"]

[[rules]]
name = "sending needs a human"
hosts = ["localhost"]
paths = ["/send"]
action = "approve"
approvers = ["owner"]
"#;

/// POSTs to the rule's path as `agent`; requests still held when the test ends fail quietly.
fn send(gw: &Gateway, agent: &str, port: u16) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let c = gw.client(agent);
    tokio::spawn(async move {
        c.post(format!("https://localhost:{port}/send"))
            .body("hello")
            .send()
            .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_holds_at_most_max_held_per_agent_requests() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], &format!("{AGENTS}{HOLDING}"), &[], &["dev", "other"]);
    let mut held = Events::open(&gw).await;
    let first = send(&gw, "dev", up.port);
    let first_id = held.next("pending").await;
    let _second = send(&gw, "dev", up.port);
    held.next("pending").await;
    // The third is refused at once, with the reason.
    let (status, reason) = answer(send(&gw, "dev", up.port).await.unwrap().unwrap()).await;
    assert_eq!(status, 429, "{reason}");
    assert!(
        reason.contains("already has 2 requests waiting for approval (approvals.max_held_per_agent)"),
        "{reason}"
    );
    // Another agent still has its own slots.
    let _other = send(&gw, "other", up.port);
    held.next("pending").await;
    // A decided request frees its slot.
    let o = gw.control_cli(&["approvals", "deny", &first_id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(first.await.unwrap().unwrap().status(), 403);
    let _fourth = send(&gw, "dev", up.port);
    held.next("pending").await;
    assert!(!up.contacted());

    gw.stop();
    let capped: Vec<_> = gw.audit().into_iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(capped.len(), 1, "{capped:#?}");
    assert_eq!(capped[0]["agent"], "dev");
    assert_eq!(capped[0]["decision"], "deny");
    assert_eq!(capped[0]["rules"][0], "sending needs a human");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_gets_431_on_every_listener_and_protocol() {
    let up = upstream(true).await;
    let plain = upstream(false).await;
    let gw = Gateway::start(&[&up, &plain], &format!("{AGENTS}{OPEN}"), &[], &["dev"]);
    let big = "a".repeat(100_000);
    let h1 = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(gw.url("dev")).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&gw.ca_pem()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let h2 = gw.client("dev");
    for (what, c, url, version) in [
        (
            "the plain listener",
            &h1,
            format!("http://localhost:{}/", plain.port),
            reqwest::Version::HTTP_11,
        ),
        (
            "HTTP/1.1 in a tunnel",
            &h1,
            format!("https://localhost:{}/", up.port),
            reqwest::Version::HTTP_11,
        ),
        (
            "HTTP/2 in a tunnel",
            &h2,
            format!("https://localhost:{}/", up.port),
            reqwest::Version::HTTP_2,
        ),
    ] {
        let r = c.get(&url).header("x-big", &big).send().await.unwrap();
        assert_eq!(r.version(), version, "{what}");
        let (status, reason) = answer(r).await;
        assert_eq!(status, 431, "{what}: {reason}");
        assert!(reason.contains("the limit is 65536 bytes"), "{what}: {reason}");
        // A whole answer, not a reset: the connection still carries the next request.
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{what}");
    }
    // Only the small requests went out.
    assert_eq!(plain.requests().len(), 1);
    assert_eq!(up.requests().len(), 2);
    assert!(
        up.requests()
            .iter()
            .chain(&plain.requests())
            .all(|s| s.header("x-big").is_none())
    );
}
