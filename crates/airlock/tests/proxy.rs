//! The proxy's contract through real sockets: authentication, policy answers, confused
//! destinations (invariant 9), dial-time address checks, protocols inside tunnels.
mod support;
use support::*;

fn policy() -> String {
    r#"
[[agents]]
name = "dev"
secrets = []

[[rules]]
name = "reads"
hosts = ["localhost"]
methods = ["GET"]
action = "allow"

[[rules]]
name = "admin is off limits"
hosts = ["localhost"]
paths = ["/admin", "/admin/**"]
action = "deny"
reason = "the admin API is not for agents"

[[rules]]
name = "sql reads"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/sql"]
body = { sql = ["read"] }
action = "allow"

[[rules]]
name = "no ddl"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/sql"]
body = { sql = ["ddl"] }
action = "deny"

[[rules]]
name = "limited"
hosts = ["localhost"]
paths = ["/limited"]
rate = "3/min"
action = "allow"

[[rules]]
name = "metadata"
hosts = ["169.254.169.254", "127.0.0.2"]
action = "allow"

[[rules]]
name = "no prod"
hosts = ["localhost"]
headers = { "X-Env" = "prod-*" }
action = "deny"

[[rules]]
name = "websocket"
hosts = ["localhost"]
paths = ["/ws"]
action = "allow"
"#
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_proxy_credentials_get_407_and_nothing_is_dialed() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &policy(), &[], &["dev"]);
    let url = format!("https://localhost:{}/", up.port);
    for proxy in [format!("http://{}", gw.proxy), format!("http://dev:wrong@{}", gw.proxy)] {
        let o = curl(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--proxy",
            &proxy,
            "--cacert",
            &gw.ca_path().to_string_lossy(),
            &url,
        ]);
        assert!(text(&o).contains("407"), "{}", text(&o));
    }
    let o = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--proxy",
        &format!("http://dev:x@{}", gw.proxy),
        &format!("http://localhost:{}/", up.port),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "407");
    assert!(!up.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_name_the_rule_and_reason_and_encodings_do_not_dodge_rules() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &policy(), &[], &["dev"]);
    let c = gw.client("dev");
    let base = format!("https://localhost:{}", up.port);
    let r = c.get(format!("{base}/admin/users")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-airlock-decision"], "deny");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["airlock"]["rule"], "admin is off limits");
    assert_eq!(v["airlock"]["reason"], "the admin API is not for agents");
    // curl keeps the path as given (--path-as-is), so the gateway sees the raw encodings.
    for p in ["/x/%2e%2e/admin/users", "//admin", "/%61dmin", "/a/..%2fadmin/x"] {
        let o = curl(&[
            "-sS",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--proxy",
            &gw.url("dev"),
            "--cacert",
            &gw.ca_path().to_string_lossy(),
            &format!("{base}{p}"),
        ]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "403", "{p}");
    }
    let r = c
        .get(format!("{base}/x"))
        .header("x-env", "prod-eu")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("no prod"));
    // No rule matches DELETE: the default (deny) applies and says so.
    let r = c.delete(format!("{base}/thing")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("the default is deny"));
    assert!(up.requests().iter().all(|s| !s.target.contains("admin")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_body_rules_use_a_real_parser_and_rate_limits_answer_429() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &policy(), &[], &["dev"]);
    let c = gw.client("dev");
    let sql = format!("https://localhost:{}/sql", up.port);
    let ok = c
        .post(&sql)
        .json(&serde_json::json!({"query": "SELECT * FROM users"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    for q in [
        "DROP TABLE users",
        "select 1; DROP TABLE users",
        "SELECT 1; /* hi */ alter table t add column c int",
    ] {
        let r = c
            .post(&sql)
            .json(&serde_json::json!({"query": q}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{q}");
        assert!(r.text().await.unwrap().contains("no ddl"));
    }
    let limited = format!("https://localhost:{}/limited", up.port);
    for _ in 0..3 {
        assert_eq!(c.get(&limited).send().await.unwrap().status(), 200);
    }
    let r = c.get(&limited).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("rate limit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_metadata_addresses_are_refused_at_dial_time() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &policy(), &[], &["dev"]);
    let c = gw.client("dev");
    // Allowed by policy, but 169.254.169.254 and 127.0.0.2 are not in allow_private.
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("https://127.0.0.2:{}/", up.port),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 403, "{url}");
        let body = r.text().await.unwrap();
        assert!(body.contains("allow_private"), "{body}");
    }
    assert!(!up.contacted());
}

const RAW_CLIENT: &str = r#"
import base64, socket, ssl, sys, urllib.parse
proxy = urllib.parse.urlparse(sys.argv[1])
connect_host, port, sni, host_header, mode = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
s = socket.create_connection((proxy.hostname, proxy.port))
auth = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
s.sendall(f"CONNECT {connect_host}:{port} HTTP/1.1\r\nHost: {connect_host}:{port}\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
assert head.startswith(b"HTTP/1.1 200"), head
if mode == "garbage":
    s.sendall(b"\x00\x01SSH-2.0-OpenSSH garbage\r\n")
    try:
        print("closed" if s.recv(100) == b"" else "open")
    except ConnectionResetError:
        print("closed")
    sys.exit(0)
ctx = ssl.create_default_context(cafile=sys.argv[7])
ctx.check_hostname = False
t = ctx.wrap_socket(s, server_hostname=sni)
t.sendall(f"GET /ws HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
resp = b""
while b"\r\n\r\n" not in resp:
    chunk = t.recv(4096)
    if not chunk:
        break
    resp += chunk
print(resp.split(b"\r\n")[0].decode())
if mode == "ws" and resp.startswith(b"HTTP/1.1 101"):
    t.sendall(b"ping-through-the-tunnel")
    got = b""
    while len(got) < 23:
        got += t.recv(100)
    print("echo:", got.decode())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_sni_and_host_must_agree_and_tunnels_carry_only_tls_or_http() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], &policy(), &[], &["dev"]);
    let (url, ca, port) = (
        gw.url("dev"),
        gw.ca_path().to_string_lossy().to_string(),
        up.port.to_string(),
    );
    let lh = format!("localhost:{port}");
    // SNI names another host than CONNECT → 421.
    let (ok, out) = python(
        RAW_CLIENT,
        &[&url, "localhost", &port, "evil.example", &lh, "http", &ca],
    );
    assert!(ok && out.contains("421"), "{out}");
    // Host header names another host than CONNECT → 421.
    let (ok, out) = python(
        RAW_CLIENT,
        &[&url, "localhost", &port, "localhost", "evil.example", "http", &ca],
    );
    assert!(ok && out.contains("421"), "{out}");
    // Neither TLS nor HTTP inside the tunnel → closed.
    let (ok, out) = python(RAW_CLIENT, &[&url, "localhost", &port, "", "", "garbage", &ca]);
    assert!(ok && out.contains("closed"), "{out}");
    assert!(!up.contacted());
    // WebSocket: policy at the handshake, then bytes relayed both ways.
    let (ok, out) = python(RAW_CLIENT, &[&url, "localhost", &port, "localhost", &lh, "ws", &ca]);
    assert!(
        ok && out.contains("101") && out.contains("echo: ping-through-the-tunnel"),
        "{out}"
    );
    gw.stop();
    let audit = gw.audit();
    assert!(audit.iter().filter(|r| r["kind"] == "misdirected").count() >= 2);
    assert!(audit.iter().any(|r| r["kind"] == "tunnel"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_both_ways_and_redirects_are_not_followed() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &policy(), &[], &["dev"]);
    let c = gw.client("dev");
    let r = c.get(format!("https://localhost:{}/h2", up.port)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "agent side negotiates h2 by ALPN"
    );
    assert_eq!(up.last().version, "HTTP/2.0", "upstream side negotiates h2 by ALPN");
    let r = c
        .get(format!("https://localhost:{}/redirect", up.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(up.requests().len(), 2, "the gateway did not follow the redirect");
}

const MALFORMED: &str = r#"
import base64, socket, sys, urllib.parse
proxy = urllib.parse.urlparse(sys.argv[1])
auth = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
def raw(data, connect=None):
    s = socket.create_connection((proxy.hostname, proxy.port))
    if connect:
        s.sendall(f"CONNECT {connect} HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += s.recv(1)
    s.sendall(data)
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
            if b"\r\n\r\n" in out:
                break
    except (ConnectionResetError, BrokenPipeError):
        pass
    return out.split(b"\r\n")[0].decode(errors="replace") or "closed"
print("hello:", raw(b"\x16\x03\x01\x00\x10not-a-client-hello", connect=sys.argv[2]))
print("huge:", raw(b"GET http://localhost/ HTTP/1.1\r\nX-Big: " + b"a" * 400000 + b"\r\n\r\n"))
print("junk:", raw(b"\x00\xff\xfe garbage \r\n\r\n"))
print("badconnect:", raw(f"CONNECT nohostport HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode()))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_clear_errors_and_the_gateway_keeps_serving() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], &policy(), &[], &["dev"]);
    let (ok, out) = python(MALFORMED, &[&gw.url("dev"), &format!("localhost:{}", up.port)]);
    assert!(ok, "{out}");
    assert!(out.contains("hello: closed"), "{out}");
    assert!(out.contains("huge: HTTP/1.1 431"), "{out}");
    assert!(
        out.contains("junk: HTTP/1.1 400") || out.contains("junk: closed"),
        "{out}"
    );
    assert!(out.contains("badconnect: HTTP/1.1 400"), "{out}");
    // Still serving.
    let r = gw
        .client("dev")
        .get(format!("https://localhost:{}/after", up.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.stop();
    assert!(!gw.logs().contains("panicked"), "{}", gw.logs());
    let audit = gw.audit();
    assert!(
        audit
            .iter()
            .any(|r| r["reason"].as_str().unwrap_or("").contains("bad TLS ClientHello")),
        "{audit:?}"
    );
}
