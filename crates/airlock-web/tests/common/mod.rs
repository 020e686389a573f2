//! Shared test setup: a real SQLite store, audit writer and approvals hub behind the real
//! control-plane router on a loopback port, plus a headless Chromium driven over WebDriver.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use airlock_approvals::{HeldRule, HoldRequest, Hub, HubConfig, Ticket, Verdict};
use airlock_channels::{HeldRequest, Person};
use airlock_core::inject::SecretIndex;
use airlock_core::policy::{Action, ApprovalSpec, Policy};
use airlock_gateway::{GatewayState, Identities};
use airlock_store::{AuditWriter, Signer, Store};
use airlock_web::ControlState;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery staple";
pub const WAIT: Duration = Duration::from_secs(15);

pub struct Env {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub hub: Option<Hub>,
    pub addr: SocketAddr,
    pub base: String,
}

fn person(name: &str, roles: &[&str]) -> Person {
    Person {
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ids: BTreeMap::new(),
    }
}

/// alice (owner), bob (senior), mallory (intern), each with [`PASSWORD`]; no push channels.
pub async fn env() -> Env {
    start(true).await
}

/// The control plane with approvals not configured (`hub: None`).
pub async fn env_without_hub() -> Env {
    start(false).await
}

async fn start(with_hub: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_sqlite(&dir.path().join("airlock.db")).await.unwrap();
    let signer: Signer = Arc::new(|m: &[u8]| (m.to_vec(), b"k".to_vec()));
    let (audit, _writer) = AuditWriter::start(store.clone(), signer, 1000).await.unwrap();
    let hub = if with_hub {
        let cfg = HubConfig {
            people: vec![
                person("alice", &["owner"]),
                person("bob", &["senior"]),
                person("mallory", &["intern"]),
            ],
            channels: vec![],
            token_key: vec![7; 32],
            lease: std::time::Duration::from_secs(10),
        };
        let hub = Hub::start(cfg, store.clone(), audit.clone()).await.unwrap();
        for name in ["alice", "bob", "mallory"] {
            let phc = airlock_web::dashboard::hash_password(PASSWORD).unwrap();
            store.set_password(name, &phc, 0).await.unwrap();
        }
        Some(hub)
    } else {
        None
    };
    let (ca, _) = airlock_tls::CertificateAuthority::generate("airlock test").unwrap();
    let leaves = Arc::new(airlock_tls::LeafCache::new(Arc::new(ca), 16));
    let tls = airlock_gateway::upstream::client_tls_config(&[]).unwrap();
    let gateway = Arc::new(GatewayState::new(
        Policy::new(Action::Deny, vec![]),
        SecretIndex::new(vec![]),
        Identities::default(),
        leaves,
        airlock_gateway::upstream::build_client(tls.clone(), vec![], true),
        airlock_gateway::upstream::build_client(tls, vec![], false),
        audit,
    ));
    let state = ControlState {
        gateway,
        store: store.clone(),
        token_hash: vec![0; 32],
        hub: hub.clone(),
        reload: None,
        version: "test".into(),
        started_ms: 0,
        onecli: None,
        refresh_identities: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, airlock_web::router(state)).await });
    Env {
        _dir: dir,
        store,
        hub,
        addr,
        base: format!("http://{addr}"),
    }
}

impl Env {
    pub fn hub(&self) -> &Hub {
        self.hub.as_ref().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Holds a request; the returned task resolves to the verdict the gateway would see.
    pub async fn hold(&self, req: HoldRequest) -> (String, JoinHandle<Verdict>) {
        let ticket: Ticket = self.hub().hold(req).await.unwrap();
        let id = ticket.id().to_string();
        (id, tokio::spawn(ticket.wait()))
    }
}

/// A held POST from agent "mailbot" under rule "mail", decided by `roles`.
pub fn request(roles: &[&str], grant_secs: Option<u64>, body: &str) -> HoldRequest {
    HoldRequest {
        held: HeldRequest {
            agent: "mailbot".into(),
            method: "POST".into(),
            scheme: "https".into(),
            host: "api.example.com".into(),
            port: 443,
            target: "/v1/notes".into(),
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: bytes::Bytes::from(body.to_string()),
        },
        rules: vec![HeldRule {
            name: "mail".into(),
            reason: "writes need a human".into(),
            spec: ApprovalSpec {
                approvers: roles.iter().map(|r| r.to_string()).collect(),
                quorum: 1,
                timeout_secs: 600,
                grant_secs,
                defer_secs: None,
            },
        }],
    }
}

/// Waits (bounded) until the verdict task finishes.
pub async fn verdict(task: JoinHandle<Verdict>) -> Verdict {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("no verdict in time")
        .unwrap()
}

// ---- plain HTTP (reqwest) ----

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in over plain HTTP; returns the `Cookie` header value and the session's CSRF token.
pub async fn sign_in(env: &Env, person: &str) -> (String, String) {
    let res = http()
        .post(env.url("/dashboard/login"))
        .form(&[("person", person), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "sign-in as {person} failed");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let page = get(env, "/dashboard", Some(&cookie)).await.1;
    (cookie, csrf_of(&page))
}

pub async fn get(env: &Env, path: &str, cookie: Option<&str>) -> (reqwest::StatusCode, String) {
    let mut req = http().get(env.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

pub async fn post(env: &Env, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
    let mut req = http().post(env.url(path)).form(form);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// The first hidden CSRF field's value in a page.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("no CSRF field on the page") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

// ---- the browser ----

const NO_BROWSER: &str = "could not start chromedriver/Chromium for the dashboard's browser tests: \
                          install chromium and chromium-driver (Debian: apt-get install chromium chromium-driver)";

/// A chromedriver process on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        // chromedriver needs an explicit port: take a free one from the OS.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free port")
            .port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{NO_BROWSER}: {e}"));
        let stdout = child.stdout.take().expect("chromedriver stdout");
        let mut lines = BufReader::new(stdout).lines();
        let started = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("started successfully") {
                    return true;
                }
            }
            false
        })
        .await;
        if started != Ok(true) {
            panic!("{NO_BROWSER}: chromedriver did not report a successful start");
        }
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Driver {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    async fn connect(&self) -> Client {
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1024".into(),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        args.push("--no-first-run".into());
        let mut opts = serde_json::json!({ "args": args });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            opts["binary"] = "/usr/bin/chromium".into();
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), opts);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("{NO_BROWSER}: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Runs `f` with a fresh headless Chromium, and closes the browser whether `f` passes or panics.
pub async fn with_browser<F, Fut>(f: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let driver = Driver::start().await;
    let client = driver.connect().await;
    let outcome = tokio::spawn(f(client.clone())).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Signs in through the form, as a person would.
pub async fn browser_sign_in(c: &Client, env: &Env, person: &str, password: &str) {
    c.goto(&env.url("/dashboard/login")).await.unwrap();
    c.find(Locator::Id("person-input"))
        .await
        .unwrap()
        .send_keys(person)
        .await
        .unwrap();
    c.find(Locator::Id("password-input"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
}

/// Waits for an element (bounded), then returns its text.
pub async fn wait_text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css:?} never appeared: {e}"))
        .text()
        .await
        .unwrap()
}

pub async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}
