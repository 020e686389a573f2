//! Invariants 2, 3 and 4 through real sockets: the real key reaches only the declared slot
//! of a request to a bound host over TLS; the agent only ever sees the placeholder; a
//! placeholder headed anywhere else is blocked before anything is dialed.
mod support;
use support::*;

const REAL: &str = "sk-live-REAL-4f9a8b7c6d5e";

fn rules() -> String {
    r#"
[[agents]]
name = "mailbot"
secrets = ["gmail"]

[[agents]]
name = "other"
secrets = []

[secrets.gmail]
hosts = ["localhost"]
header = "Authorization"
format = "Bearer {secret}"
placeholder = "airlock-gmail"
env = "GMAIL_TOKEN"

[[rules]]
name = "local api"
hosts = ["localhost", "127.0.0.1"]
action = "allow"
"#
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_key_reaches_upstream_and_agent_sees_only_placeholder() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], &rules(), &[("gmail", REAL)], &["mailbot"]);
    let c = gw.client("mailbot");
    let base = format!("https://localhost:{}", up.port);

    let r = c
        .get(format!("{base}/messages"))
        .bearer_auth("airlock-gmail")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-airlock-decision"], "allow");
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );

    // An upstream that echoes the credential (header and a body split into 1-byte chunks)
    // gets it replaced by the placeholder on the way back.
    let r = c
        .get(format!("{base}/echo-auth"))
        .bearer_auth("airlock-gmail")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-echo"], "Bearer airlock-gmail");
    let body = r.text().await.unwrap();
    assert_eq!(body, "you sent: Bearer airlock-gmail (twice: Bearer airlock-gmail)");

    gw.stop();
    // Never in the gateway's logs, the audit records, or the database file in clear.
    assert!(!gw.logs().contains(REAL), "secret in logs");
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    assert!(!audit.contains(REAL), "secret in audit");
    assert!(
        audit.contains("\"secrets\":[\"gmail\"]"),
        "audit names the injected secret: {audit}"
    );
    let db = std::fs::read(gw.dir.path().join("airlock-data/airlock.db")).unwrap();
    assert!(
        !db.windows(REAL.len()).any(|w| w == REAL.as_bytes()),
        "plaintext secret in the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_outside_the_declared_slot_is_never_replaced() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &rules(), &[("gmail", REAL)], &["mailbot"]);
    let c = gw.client("mailbot");
    let base = format!("https://localhost:{}", up.port);
    // Another header, the path, the query, the body: forwarded as the placeholder.
    c.get(format!("{base}/x"))
        .header("x-note", "airlock-gmail")
        .send()
        .await
        .unwrap();
    c.get(format!("{base}/p/airlock-gmail")).send().await.unwrap();
    c.get(format!("{base}/q?token=airlock-gmail")).send().await.unwrap();
    c.post(format!("{base}/gists"))
        .body("{\"content\":\"airlock-gmail\"}")
        .send()
        .await
        .unwrap();
    for s in up.requests() {
        let all = format!("{s:?}");
        assert!(!all.contains(REAL), "real key outside its slot: {all}");
        assert!(s.header("authorization").is_none());
    }
    assert_eq!(up.requests().len(), 4);
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_to_another_host_is_blocked_and_audited_as_exfiltration() {
    let up = upstream(true).await;
    let elsewhere = upstream(true).await;
    let rest = rules().replace(
        "hosts = [\"localhost\", \"127.0.0.1\"]",
        "hosts = [\"localhost\", \"127.0.0.1\", \"*\"]",
    );
    let mut gw = Gateway::start(&[&up, &elsewhere], &rest, &[("gmail", REAL)], &["mailbot"]);
    let c = gw.client("mailbot");
    let other = format!("https://127.0.0.1:{}", elsewhere.port);
    for req in [
        c.get(format!("{other}/")).bearer_auth("airlock-gmail"),
        c.get(format!("{other}/leak")).header("x-any", "zz airlock-gmail zz"),
        c.get(format!("{other}/airlock-gmail")),
        c.post(format!("{other}/gist")).body("leak: airlock-gmail"),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403);
        let body = r.text().await.unwrap();
        assert!(body.contains("exfiltration blocked"), "{body}");
    }
    // A large streamed body with the placeholder past the prefetch window.
    let mut big = vec![b'a'; 300 * 1024];
    big.extend_from_slice(b"airlock-gmail");
    if let Ok(r) = c.post(format!("{other}/upload")).body(big).send().await {
        let status = r.status();
        assert_eq!(
            status,
            403,
            "streamed exfiltration must not succeed: {}",
            r.text().await.unwrap_or_default()
        );
    }
    assert!(
        elsewhere.requests().iter().all(|s| s.body.len() < 300 * 1024),
        "the upstream got the whole body"
    );
    assert!(elsewhere.requests().iter().all(|s| !format!("{s:?}").contains(REAL)));
    gw.stop();
    let exfil = gw.audit().into_iter().filter(|r| r["kind"] == "exfiltration").count();
    assert!(exfil >= 4, "exfiltration records: {exfil}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_injection_for_ungranted_agents_or_plain_http() {
    let tls = upstream(true).await;
    let plain = upstream(false).await;
    let gw = Gateway::start(&[&tls, &plain], &rules(), &[("gmail", REAL)], &["mailbot", "other"]);
    // The agent "other" is not granted gmail: refused.
    let r = gw
        .client("other")
        .get(format!("https://localhost:{}/", tls.port))
        .bearer_auth("airlock-gmail")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not granted"));
    // Plain HTTP toward a bound host: never injected (allow_http is off).
    let r = gw
        .client("mailbot")
        .get(format!("http://localhost:{}/", plain.port))
        .bearer_auth("airlock-gmail")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("only injected over HTTPS"));
    assert!(!tls.contacted() && !plain.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_python_clients_get_the_same_treatment() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], &rules(), &[("gmail", REAL)], &["mailbot"]);
    let url = format!("https://localhost:{}/echo-auth", up.port);
    let o = curl(&[
        "-sS",
        "--proxy",
        &gw.url("mailbot"),
        "--cacert",
        &gw.ca_path().to_string_lossy(),
        "-H",
        "Authorization: Bearer airlock-gmail",
        &url,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "you sent: Bearer airlock-gmail (twice: Bearer airlock-gmail)"
    );
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );

    let script = r#"
import base64, http.client, ssl, sys, urllib.parse
proxy = urllib.parse.urlparse(sys.argv[1])
ctx = ssl.create_default_context(cafile=sys.argv[2])
conn = http.client.HTTPSConnection(proxy.hostname, proxy.port, context=ctx)
auth = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
conn.set_tunnel("localhost", int(sys.argv[3]), headers={"Proxy-Authorization": "Basic " + auth})
conn.request("GET", "/echo-auth", headers={"Authorization": "Bearer airlock-gmail"})
r = conn.getresponse()
print(r.status, r.read().decode())
"#;
    let (ok, out) = python(
        script,
        &[
            &gw.url("mailbot"),
            &gw.ca_path().to_string_lossy(),
            &up.port.to_string(),
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("200 you sent: Bearer airlock-gmail"), "{out}");
    assert!(!out.contains(REAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_basic_slots_are_filled_only_where_declared() {
    let up = upstream(true).await;
    let rest = r#"
[[agents]]
name = "bot"
secrets = ["maps", "jira"]

[secrets.maps]
hosts = ["localhost"]
query = "key"
placeholder = "airlock-maps-key"

[secrets.jira]
hosts = ["localhost"]
basic_user = "me@example.com"
placeholder = "airlock-jira-token"

[[rules]]
name = "all"
hosts = ["localhost"]
action = "allow"
"#;
    let gw = Gateway::start(
        &[&up],
        rest,
        &[("maps", "MAPS-REAL-1"), ("jira", "JIRA-REAL-2")],
        &["bot"],
    );
    let c = gw.client("bot");
    let base = format!("https://localhost:{}", up.port);
    c.get(format!(
        "{base}/geo?q=paris&key=airlock-maps-key&other=airlock-maps-key"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(up.last().target, "/geo?q=paris&key=MAPS-REAL-1&other=airlock-maps-key");
    c.get(format!("{base}/issue"))
        .basic_auth("anyone", Some("airlock-jira-token"))
        .send()
        .await
        .unwrap();
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD.encode("me@example.com:JIRA-REAL-2");
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Basic {want}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_agents_added_while_serving_take_effect_at_once() {
    let up = upstream(true).await;
    let rest = rules().replace("[[agents]]\nname = \"other\"", "[[agents]]\nname = \"late\"");
    let gw = Gateway::start(&[&up], &rest, &[], &["mailbot"]);
    let get = |c: &reqwest::Client, auth: bool| {
        let r = c.get(format!("https://localhost:{}/", up.port));
        if auth { r.bearer_auth("airlock-gmail") } else { r }.send()
    };
    // No value yet: refused, and the reason says what to do.
    let r = get(&gw.client("mailbot"), true).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("airlock secret set gmail"));
    // SQLite has no change notifications: the CLI tells the running gateway, so each change
    // holds from the very next request (no waiting for the 2 s poll).
    let o = airlock(
        &gw.config,
        &["secret", "set", "gmail"],
        Some(REAL.as_bytes()),
        &[("AIRLOCK_CONTROL_URL", &format!("http://{}", gw.control))],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(get(&gw.client("mailbot"), true).await.unwrap().status(), 200);
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    let o = gw.control_cli(&["agent", "add", "late"]);
    assert!(o.status.success(), "{}", text(&o));
    let late = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    let (creds, _) = late.trim_start_matches("http://").rsplit_once('@').unwrap();
    let late_client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{creds}@{}", gw.proxy)).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&gw.ca_pem()).unwrap())
        .build()
        .unwrap();
    assert_eq!(get(&late_client, false).await.unwrap().status(), 200);
    // Removed: refused from the next request on (407, which reqwest reports as an error).
    let o = gw.control_cli(&["agent", "rm", "late"]);
    assert!(o.status.success(), "{}", text(&o));
    let fresh = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{creds}@{}", gw.proxy)).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(&gw.ca_pem()).unwrap())
        .build()
        .unwrap();
    assert!(
        get(&fresh, false).await.is_err(),
        "a removed agent's token still worked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificates_are_verified() {
    let up = upstream(true).await;
    // Same upstream, but its CA is not in upstream_ca: the gateway must refuse to talk to it.
    let section = gateway_section(&[&up]).replace("upstream_ca = [\"upstream-0.pem\"]", "upstream_ca = []");
    let (dir, config) = setup(&format!("{section}{}", rules()));
    let o = airlock(&config, &["agent", "add", "mailbot"], None, &[]);
    let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    let gw = Gateway::serving(dir, config, vec![("mailbot".into(), url)]);
    let r = gw
        .client("mailbot")
        .get(format!("https://localhost:{}/", up.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("certificate"));
    assert!(up.requests().is_empty());
}
