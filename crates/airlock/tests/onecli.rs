//! The OneCLI-compatible API end to end: a real `airlock serve`, real HTTP clients replaying the
//! request sequences of `@onecli-sh/sdk` (2.x under `/v1`, 0.5 under `/api`: the same paths,
//! headers and bodies), a real HTTPS upstream reached through the proxy with the `env` the API
//! handed out, and held requests decided through the long poll as the configured approver.
mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::replicas::{init, pg};
use support::*;

const REAL: &str = "sk-ant-REAL-0n3cl1-key";
const PLACEHOLDER: &str = "airlock-anthropic-placeholder";

const CONFIG: &str = r#"
[[agents]]
name = "ag-*"
secrets = ["anthropic"]

[secrets.anthropic]
hosts = ["localhost"]
header = "x-api-key"
placeholder = "airlock-anthropic-placeholder"
env = "ANTHROPIC_API_KEY"

[people.nanoclaw-host]
roles = ["chat-approver"]

[people.alice]
roles = ["owner"]

[compat.onecli]
approver = "nanoclaw-host"

[[rules]]
name = "models"
hosts = ["localhost"]
paths = ["/v1/messages"]
action = "allow"

[[rules]]
name = "sending needs a human"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/send"]
action = "approve"
approvers = ["chat-approver"]

[[rules]]
name = "quick"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/quick"]
action = "approve"
approvers = ["chat-approver"]
timeout = "2s"

[[rules]]
name = "the owner decides"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/owner"]
action = "approve"
approvers = ["owner"]
"#;

/// A gateway serving [`CONFIG`] on SQLite, or on a fresh PostgreSQL database (kept alive by
/// the returned handle).
async fn start(up: &Upstream, postgres: bool) -> (Gateway, Option<pg::Database>) {
    if !postgres {
        let gw = Gateway::start(&[up], CONFIG, &[("anthropic", REAL)], &[]);
        return (gw, None);
    }
    let db = pg::Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    let o = init(dir.path(), &db.url);
    assert!(o.status.success(), "{}", text(&o));
    let config = dir.path().join("airlock.toml");
    let body = format!("{}{CONFIG}\n[store]\nurl = {:?}\n", gateway_section(&[up]), db.url);
    std::fs::write(&config, body).unwrap();
    std::fs::write(dir.path().join("upstream-0.pem"), up.ca_pem.as_ref().unwrap()).unwrap();
    let o = airlock(&config, &["secret", "set", "anthropic"], Some(REAL.as_bytes()), &[]);
    assert!(o.status.success(), "{}", text(&o));
    (Gateway::serving(dir, config, vec![]), Some(db))
}

/// `airlock apikey add NAME --scope SCOPES` (against the running gateway's store): the key.
fn apikey(gw: &Gateway, name: &str, scopes: &str) -> String {
    let o = gw.cli(&["apikey", "add", name, "--scope", scopes]);
    assert!(o.status.success(), "{}", text(&o));
    let key = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    assert!(key.starts_with("alk_"), "{key}");
    key
}

/// The SDK's requests: JSON bodies with `Content-Type`, `Authorization: Bearer` when a key is set.
struct Sdk {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Sdk {
    fn new(gw: &Gateway, prefix: &str, key: Option<&str>) -> Sdk {
        Sdk {
            base: format!("http://{}{prefix}", gw.control),
            key: key.map(str::to_string),
            http: reqwest::Client::new(),
        }
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => r.header("Authorization", format!("Bearer {k}")),
            None => r,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .auth(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .auth(self.http.post(format!("{}{path}", self.base)))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// A client configured exactly by `env` (proxy with the agent's credential, the CA as the SDK
/// writes and mounts it), the proxy's host:port swapped for the test gateway's.
fn client_from(gw: &Gateway, cfg: &Value) -> reqwest::Client {
    let proxy = cfg["env"]["HTTPS_PROXY"].as_str().unwrap();
    let proxy = proxy.replace("host.docker.internal:3128", &gw.proxy.to_string());
    let ca = cfg["caCertificate"].as_str().unwrap();
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_follows_the_sdk_on_sqlite() {
    provisioning(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_follows_the_sdk_on_postgres() {
    provisioning(true).await;
}

async fn provisioning(postgres: bool) {
    let up = upstream(true).await;
    let (mut gw, _db) = start(&up, postgres).await;
    let key = apikey(&gw, "nanoclaw", "provision,approvals");
    let sdk = Sdk::new(&gw, "/v1", Some(&key));
    let anonymous = Sdk::new(&gw, "/v1", None);

    // Health and the gateway URL need no key (NanoClaw probes /api/health).
    for prefix in ["/v1", "/api"] {
        let (code, v) = Sdk::new(&gw, prefix, None).get("/health").await;
        assert_eq!(code, 200, "{prefix}");
        assert_eq!(v["status"], "ok");
        assert!(v["version"].is_string() && v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let (code, v) = sdk.get("/gateway-url").await;
    assert_eq!(
        (code, v["url"].as_str().unwrap()),
        (200, format!("http://{}", gw.control).as_str())
    );

    // No key → 401, always.
    let ensure = json!({"name": "Main group", "identifier": "ag-1-main"});
    assert_eq!(anonymous.post("/agents", &ensure).await.0, 401);
    assert_eq!(anonymous.get("/agents").await.0, 401);
    assert_eq!(anonymous.get("/container-config?agent=ag-1-main").await.0, 401);

    // ensureAgent: 201, then 409 (the SDK's `created: false`).
    let (code, v) = sdk.post("/agents", &ensure).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["identifier"].as_str()),
        (Some("ag-1-main"), Some("ag-1-main"))
    );
    assert_eq!(v["name"], "Main group");
    assert!(v["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sdk.post("/agents", &ensure).await.0, 409);
    for bad in [
        json!({"name": "x", "identifier": "Ag-Upper"}),
        json!({"name": "x", "identifier": "-lead"}),
        json!({"name": "x", "identifier": "a".repeat(51)}),
        json!({"identifier": "ag-2"}),
    ] {
        let (code, v) = sdk.post("/agents", &bad).await;
        assert_eq!(code, 400, "{bad}");
        assert!(v["error"].is_string());
    }

    // listAgents.
    let (code, v) = sdk.get("/agents").await;
    assert_eq!(code, 200);
    let main = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["identifier"] == "ag-1-main")
        .unwrap();
    assert_eq!(main["name"], "Main group");
    assert_eq!(main["isDefault"], false);

    // Container config: exactly the proxy, the CA for every TLS stack, and the placeholder.
    let (code, cfg) = sdk.get("/container-config?agent=ag-1-main").await;
    assert_eq!(code, 200, "{cfg}");
    let env: BTreeMap<String, String> = serde_json::from_value(cfg["env"].clone()).unwrap();
    let proxy = env["HTTPS_PROXY"].clone();
    let token = proxy
        .strip_prefix("http://ag-1-main:")
        .and_then(|r| r.strip_suffix("@host.docker.internal:3128"))
        .unwrap_or_else(|| panic!("{proxy}"))
        .to_string();
    assert!(token.len() >= 40, "{token}");
    let ca = "/run/airlock/ca.pem";
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for k in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        want.insert(k.into(), proxy.clone());
    }
    for k in [
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        want.insert(k.into(), ca.into());
    }
    want.insert("NODE_USE_ENV_PROXY".into(), "1".into());
    want.insert("ANTHROPIC_API_KEY".into(), PLACEHOLDER.into());
    assert_eq!(env, want);
    assert_eq!(cfg["caCertificateContainerPath"], ca);
    assert_eq!(
        cfg["caCertificate"].as_str().unwrap().as_bytes(),
        gw.ca_pem().as_slice()
    );
    assert!(cfg.get("warnings").is_none(), "{cfg}");
    assert!(!cfg.to_string().contains(REAL));

    // The SDK 0.5 prefix answers the same.
    let legacy = Sdk::new(&gw, "/api", Some(&key));
    assert_eq!(legacy.get("/container-config?agent=ag-1-main").await.1, cfg);
    assert_eq!(legacy.post("/agents", &ensure).await.0, 409);

    let (code, v) = sdk.get("/container-config?agent=ag-404").await;
    assert_eq!((code, v["code"].as_str()), (404, Some("AGENT_NOT_FOUND")));

    // Usable at once, no restart: through the proxy with that env, the real key is injected.
    let r = client_from(&gw, &cfg)
        .post(format!("https://localhost:{}/v1/messages", up.port))
        .header("x-api-key", &env["ANTHROPIC_API_KEY"])
        .body("{\"model\":\"m\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.last().header("x-api-key"), Some(REAL));

    // An identifier no [[agents]] entry names gets a credential that grants nothing.
    let (code, _) = sdk
        .post("/agents", &json!({"name": "stray", "identifier": "zz-stray"}))
        .await;
    assert_eq!(code, 201);
    let (_, stray) = sdk.get("/container-config?agent=zz-stray").await;
    assert!(
        stray["warnings"][0].as_str().unwrap().contains("no [[agents]] entry"),
        "{stray}"
    );
    assert!(stray["env"].get("ANTHROPIC_API_KEY").is_none());
    let seen = up.requests().len();
    let r = client_from(&gw, &stray)
        .post(format!("https://localhost:{}/v1/messages", up.port))
        .header("x-api-key", PLACEHOLDER)
        .send()
        .await;
    assert!(r.map_or(true, |r| r.status() != 200));
    assert_eq!(up.requests().len(), seen, "an undeclared agent reached the upstream");

    // Scopes: a provision key cannot read approvals; an approvals key cannot provision; no key
    // reaches any other control endpoint.
    let provision = Sdk::new(&gw, "/v1", Some(&apikey(&gw, "prov", "provision")));
    let approvals = Sdk::new(&gw, "/v1", Some(&apikey(&gw, "appr", "approvals")));
    assert_eq!(provision.get("/approvals/pending").await.0, 403);
    assert_eq!(
        provision
            .post("/approvals/x/decision", &json!({"decision": "approve"}))
            .await
            .0,
        403
    );
    assert_eq!(approvals.post("/agents", &ensure).await.0, 403);
    assert_eq!(approvals.get("/container-config?agent=ag-1-main").await.0, 403);
    for path in [
        "/api/v1/status",
        "/api/v1/audit",
        "/api/v1/agents",
        "/api/v1/approvals",
        "/api/v1/grants",
    ] {
        let root = Sdk::new(&gw, "", Some(&key));
        assert_eq!(root.get(path).await.0, 401, "{path}");
    }

    // Revoked while serving: refused at once.
    let o = gw.cli(&["apikey", "list"]);
    assert!(
        text(&o).contains("nanoclaw\tscopes: provision,approvals"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains(&key));
    let o = gw.cli(&["apikey", "rm", "nanoclaw"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sdk.get("/agents").await.0, 401);
    assert_eq!(legacy.get("/container-config?agent=ag-1-main").await.0, 401);

    // The agent's credential appears in no log line and no audit record.
    gw.stop();
    assert!(!gw.logs().contains(&token), "the agent credential was logged");
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    assert!(!audit.contains(&token) && !audit.contains(&key) && !audit.contains(REAL));
    assert!(
        audit.contains("agent created through the OneCLI API by API key \\\"nanoclaw\\\""),
        "{audit}"
    );
}

/// Held requests the approver may decide, through the SDK's long poll and decision calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_are_decided_through_the_long_poll() {
    let up = upstream(true).await;
    let (mut gw, _db) = start(&up, false).await;
    let key = apikey(&gw, "nanoclaw", "provision,approvals");
    let sdk = Sdk::new(&gw, "/v1", Some(&key));
    assert_eq!(
        sdk.post("/agents", &json!({"name": "g", "identifier": "ag-7-team"}))
            .await
            .0,
        201
    );
    let (_, cfg) = sdk.get("/container-config?agent=ag-7-team").await;
    let agent = client_from(&gw, &cfg);
    let (_, gateway) = sdk.get("/gateway-url").await;
    let approvals = Sdk {
        base: format!("{}/v1", gateway["url"].as_str().unwrap()),
        key: Some(key.clone()),
        http: reqwest::Client::new(),
    };
    let send = |path: &'static str, body: &'static str| {
        let agent = agent.clone();
        let url = format!("https://localhost:{}{path}", up.port);
        tokio::spawn(async move {
            agent
                .post(url)
                .header("x-api-key", PLACEHOLDER)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };

    // The poll is open before anything is held; a held request answers it.
    let first = {
        let http = approvals.http.clone();
        let url = format!("{}/approvals/pending", approvals.base);
        let key = key.clone();
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(key).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let body_a = r#"{"to":"bob@example.com","subject":"numbers","text":"Q3 numbers attached"}"#;
    let held_a = send("/send", body_a);
    let (code, poll) = first.await.unwrap();
    assert_eq!(code, 200, "{poll}");
    let reqs = poll["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1, "{poll}");
    let a = &reqs[0];
    let id_a = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["method"], "POST");
    assert_eq!(a["host"], "localhost");
    assert_eq!(a["path"], "/send");
    assert_eq!(a["url"], format!("https://localhost:{}/send", up.port));
    assert_eq!(a["agent"]["externalId"], "ag-7-team");
    assert!(
        a["bodyPreview"].as_str().unwrap().contains("Q3 numbers attached"),
        "{a}"
    );
    assert!(a["summary"]["action"].is_string());
    assert!(
        a["summary"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["label"] == "Rule")
    );
    assert!(a["createdAt"].as_str().unwrap().ends_with('Z') && a["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert!(poll["timeoutSeconds"].as_u64().unwrap() > 0);
    let shown = a.to_string();
    assert!(!shown.contains(REAL) && !shown.contains(PLACEHOLDER), "{shown}");

    // A request only the owner may decide is never offered; `exclude` leaves out what the SDK
    // is already handling; the next eligible request answers the poll.
    let mut events = Events::open(&gw).await;
    let held_o = send("/owner", r#"{"n":1}"#);
    let id_o = events.next("pending").await;
    let held_b = send("/send", r#"{"to":"carol@example.com","text":"second"}"#);
    let (code, poll) = approvals.get(&format!("/approvals/pending?exclude={id_a}")).await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = poll["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{poll}");
    let id_b = ids[0].to_string();
    assert!(id_b != id_a && id_b != id_o);

    // Decisions: 422 on another value, then approve releases exactly the held bytes.
    let (code, _) = approvals
        .post(&format!("/approvals/{id_a}/decision"), &json!({"decision": "maybe"}))
        .await;
    assert_eq!(code, 422);
    let (code, v) = approvals
        .post(&format!("/approvals/{id_a}/decision"), &json!({"decision": "approve"}))
        .await;
    assert_eq!((code, &v), (200, &json!({"success": true})));
    assert_eq!(held_a.await.unwrap().unwrap(), 200);
    let got = up.last();
    assert_eq!(got.target, "/send");
    assert_eq!(got.body, body_a.as_bytes());
    assert_eq!(got.header("x-api-key"), Some(REAL));
    // Decided: gone (the SDK treats 410 as done), and no longer offered.
    let (code, v) = approvals
        .post(&format!("/approvals/{id_a}/decision"), &json!({"decision": "deny"}))
        .await;
    assert_eq!((code, v["error"].as_str()), (410, Some("approval_expired")));
    assert_eq!(
        approvals
            .post("/approvals/0000/decision", &json!({"decision": "approve"}))
            .await
            .0,
        404
    );
    // Not this approver's to decide.
    assert_eq!(
        approvals
            .post(&format!("/approvals/{id_o}/decision"), &json!({"decision": "approve"}))
            .await
            .0,
        403
    );

    let (code, _) = approvals
        .post(&format!("/approvals/{id_b}/decision"), &json!({"decision": "deny"}))
        .await;
    assert_eq!(code, 200);
    assert_ne!(held_b.await.unwrap().unwrap(), 200);

    // An expired request: 410.
    let held_q = send("/quick", r#"{"q":1}"#);
    let (_, poll) = approvals.get("/approvals/pending").await;
    let id_q = poll["requests"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(poll["requests"][0]["path"], "/quick");
    assert_ne!(
        held_q.await.unwrap().unwrap(),
        200,
        "the quick approval expires unanswered"
    );
    let (code, v) = approvals
        .post(&format!("/approvals/{id_q}/decision"), &json!({"decision": "approve"}))
        .await;
    assert_eq!((code, v["error"].as_str()), (410, Some("approval_expired")));

    // Airlock's own surfaces still decide side by side: the owner denies the held request.
    let o = gw.control_cli(&["approvals", "deny", &id_o, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(held_o.await.unwrap().unwrap(), 200);

    gw.stop();
    let audit = gw.audit();
    let vote = audit
        .iter()
        .find(|r| r["kind"] == "vote" && r["detail"]["approval"] == id_a.as_str())
        .expect("the approval's vote is audited");
    assert_eq!(vote["detail"]["person"], "nanoclaw-host");
    assert_eq!(vote["detail"]["channel"], "onecli-api");
    let token = cfg["env"]["HTTPS_PROXY"].as_str().unwrap().to_string();
    let token = token.split(['@', ':']).nth(2).unwrap();
    assert!(!gw.logs().contains(token));
    assert!(!serde_json::to_string(&audit).unwrap().contains(token));
}
