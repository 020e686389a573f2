//! Invariant 12 through a real `airlock serve`: requests respelled the way servers behind airlock
//! still read them as the original are refused (or held) as the original is, and the upstream
//! never receives them. The requests are written byte for byte by a raw Python client, so no
//! client library normalises them first. The full corpus, class by class, is
//! `crates/airlock-inspect/tests/respellings.rs`.
mod support;
use support::*;

fn policy() -> String {
    r#"
[[agents]]
name = "dev"
secrets = ["k"]

[secrets.k]
hosts = ["localhost"]
header = "X-Key"
placeholder = "airlock-k-placeholder"
allow_http = true

[[rules]]
name = "localhost is open"
hosts = ["localhost"]
methods = ["GET", "POST"]
action = "allow"

[[rules]]
name = "no deletes"
hosts = ["localhost"]
methods = ["DELETE"]
action = "deny"

[[rules]]
name = "no sending"
hosts = ["localhost"]
paths = ["/send"]
action = "deny"

[[rules]]
name = "no deploys"
hosts = ["localhost"]
body = { json = { "/action" = "deploy" } }
action = "deny"

[[rules]]
name = "internal is off limits"
hosts = ["127.0.0.1"]
paths = ["/internal/**"]
action = "deny"

[[rules]]
name = "sql reads"
hosts = ["127.0.0.1"]
methods = ["POST"]
paths = ["/sql"]
body = { sql = ["read"] }
action = "allow"
"#
    .to_string()
}

/// Sends `request` (with `Proxy-Authorization` added after its first line) to the proxy as
/// raw bytes; prints the status code of the answer.
const RAW: &str = r#"
import base64, socket, sys
proxy = sys.argv[1]                      # http://user:token@host:port
creds, hostport = proxy[len("http://"):].rsplit("@", 1)
host, port = hostport.rsplit(":", 1)
auth = base64.b64encode(creds.encode()).decode()
req = bytes.fromhex(sys.argv[2])
line, rest = req.split(b"\r\n", 1)
req = line + b"\r\nProxy-Authorization: Basic " + auth.encode() + b"\r\n" + rest
s = socket.create_connection((host, int(port)), timeout=20)
s.sendall(req)
data = b""
while b"\r\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n", 1)[0].split(b" ")[1].decode())
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The status the gateway answers `method target` (absolute-form, `host` as written) with.
fn status(gw: &Gateway, method: &str, host: &str, port: u16, path: &str, headers: &[&str], body: &str) -> String {
    let mut req =
        format!("{method} http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let (ok, out) = python(RAW, &[&gw.url("dev"), &hex(req.as_bytes())]);
    assert!(ok, "{out}");
    out.trim().to_string()
}

/// (method, host as written, path, headers, body, expected status, what it mirrors)
type Case<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], &'a str, &'a str, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respelled_requests_are_refused_and_never_reach_the_upstream() {
    let up = upstream(false).await;
    let gw = Gateway::start(&[&up], &policy(), &[("k", "real-key-value-1234")], &["dev"]);
    let p = up.port;
    let json = "Content-Type: application/json";
    // Positive controls: the plain spellings that are allowed reach the upstream.
    assert_eq!(status(&gw, "GET", "localhost", p, "/ok", &[], ""), "200");
    assert_eq!(
        status(&gw, "POST", "127.0.0.1", p, "/sql", &[json], r#"{"query":"SELECT 1"}"#),
        "200"
    );
    let before = up.requests().len();

    let cases: &[Case] = &[
        (
            "POST",
            "localhost",
            "/send;x",
            &[],
            "",
            "403",
            "Tomcat/Spring matrix parameters",
        ),
        ("POST", "localhost", "/x/..;/send", &[], "", "403", "Tomcat ..;"),
        (
            "POST",
            "localhost",
            "/send/",
            &[],
            "",
            "403",
            "Spring/Express trailing slash",
        ),
        ("POST", "localhost", "/send.json", &[], "", "403", "Rails format suffix"),
        (
            "POST",
            "localhost",
            "/SEND",
            &[],
            "",
            "403",
            "Express case-insensitive routing",
        ),
        ("POST", "localhost", "/send%00", &[], "", "400", "NUL: servers disagree"),
        ("POST", "localhost", "/s%C0nd", &[], "", "400", "not UTF-8"),
        (
            "delete",
            "localhost",
            "/thing",
            &[],
            "",
            "403",
            "methods compare case-insensitively",
        ),
        (
            "POST",
            "localhost",
            "/thing",
            &["X-HTTP-Method-Override: DELETE"],
            "",
            "403",
            "method override header",
        ),
        (
            "POST",
            "localhost",
            "/thing?_method=DELETE",
            &[],
            "",
            "403",
            "Laravel _method query",
        ),
        (
            "POST",
            "localhost",
            "/thing",
            &["Content-Type: application/x-www-form-urlencoded"],
            "_method=DELETE",
            "403",
            "Rails _method field",
        ),
        (
            "POST",
            "localhost",
            "/x",
            &[json],
            r#"{"action":"noop","action":"deploy"}"#,
            "403",
            "last-wins JSON",
        ),
        (
            "POST",
            "localhost",
            "/x",
            &[json],
            r#"{"action":"deploy","action":"noop"}"#,
            "403",
            "first-wins JSON",
        ),
        (
            "POST",
            "localhost",
            "/x",
            &[json],
            r#"{"Action":"deploy"}"#,
            "403",
            "Go's case-insensitive keys",
        ),
        (
            "POST",
            "localhost",
            "/x",
            &[json],
            r#"{"action":"noop"} {"action":"deploy"}"#,
            "403",
            "a JSON stream",
        ),
        (
            "GET",
            "2130706433",
            "/internal/x",
            &[],
            "",
            "403",
            "getaddrinfo: decimal IPv4",
        ),
        ("GET", "127.1", "/internal/x", &[], "", "403", "getaddrinfo: short IPv4"),
        (
            "GET",
            "0x7f000001",
            "/internal/x",
            &[],
            "",
            "403",
            "getaddrinfo: hex IPv4",
        ),
        (
            "GET",
            "0177.0.0.1",
            "/internal/x",
            &[],
            "",
            "403",
            "getaddrinfo: octal IPv4",
        ),
        (
            "POST",
            "127.0.0.1",
            "/sql",
            &[json],
            r#"{"query":"SELECT 1; DROP TABLE x"}"#,
            "403",
            "every statement must be a read",
        ),
        (
            "POST",
            "127.0.0.1",
            "/sql?query=DROP%20TABLE%20x",
            &[json],
            r#"{"query":"SELECT 1"}"#,
            "403",
            "SQL in the URL (ClickHouse)",
        ),
        // A placeholder as a header name, toward a host its secret is not bound to (issue 12).
        (
            "POST",
            "127.0.0.1",
            "/sql",
            &[json, "X-AIRLOCK-K-PLACEHOLDER: 1"],
            r#"{"query":"SELECT 1"}"#,
            "403",
            "placeholder as a header name",
        ),
    ];
    for (method, host, path, headers, body, want, what) in cases {
        let got = status(&gw, method, host, p, path, headers, body);
        assert_eq!(&got, want, "{method} http://{host}{path} {headers:?} {body} ({what})");
    }
    // None of them reached the upstream.
    let after = up.requests();
    assert_eq!(
        after.len(),
        before,
        "respelled requests reached the upstream: {:?}",
        &after[before..]
    );

    let mut gw = gw;
    gw.stop();
    let audit = gw.audit();
    let exfil = audit.iter().filter(|r| r["kind"] == "exfiltration").count();
    assert_eq!(exfil, 1, "the header-name placeholder is audited as exfiltration");
    let matrix = audit
        .iter()
        .find(|r| r["path"].as_str() == Some("/send;x"))
        .expect("the /send;x record");
    assert!(
        matrix["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("matrix parameters removed"),
        "the reason says which reading decided: {matrix}"
    );
}
