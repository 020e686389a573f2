//! OAuth2 connections and GitHub App installation tokens end to end, through a real `airlock
//! serve`, a real `airlock connect`, real TLS toward a resource server that accepts only live
//! tokens, and a local authorization server / GitHub API (`fake_auth`) that enforces PKCE,
//! client authentication, grant types, rotation, revocation and the App JWT's claims.
//!
//! Invariants 2-3 for minted tokens: the agent holds only the placeholder; the live token reaches
//! the bound host in the declared slot; an upstream's echo of it is scrubbed; no token (access,
//! refresh, installation) appears in the gateway's logs, the audit log or any response.
mod fake_auth;
mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_auth::{APP_KEY, CLIENT_SECRET, FakeAuth, github_app_config, oauth_config, resource};
use support::*;

/// Runs `airlock connect NAME` and plays the operator's browser: opens the printed URL at the
/// fake, follows its redirect to the control listener's /oauth/callback.
async fn connect_via_callback(gw: &Gateway, name: &str) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&gw.config)
        .args(["connect", name])
        .env_remove(STORE_URL_ENV)
        .env("MAIL_CLIENT_SECRET", CLIENT_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("connect prints the URL");
        if line.starts_with("http://") {
            break line;
        }
    };
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302, "the fake accepted the authorization request");
    let back = r.headers()["location"].to_str().unwrap().to_string();
    assert!(back.contains(&format!("{}/oauth/callback", gw.control)), "{back}");
    let r = browser.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The same redirect again is refused: a state answers once.
    assert_eq!(browser.get(&back).send().await.unwrap().status(), 400);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(out.status.success(), "connect failed: {} {lines:?}", text(&out));
}

/// The reason the gateway gave in a refusal.
async fn reason(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.unwrap();
    v["airlock"]["reason"].as_str().unwrap().to_string()
}

/// Waits until `fake`'s tokens issued so far are expired (they live for seconds).
async fn until_expired(ttl: Duration) {
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
}

fn assert_no_token_leaked(gw: &Gateway, fake: &FakeAuth, also: &[&str]) {
    let logs = gw.logs();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    let db = std::fs::read(gw.dir.path().join("airlock-data/airlock.db")).unwrap();
    let issued = fake.issued();
    assert!(!issued.is_empty());
    for t in issued.iter().map(String::as_str).chain(also.iter().copied()) {
        assert!(!logs.contains(t), "token in the gateway's logs");
        assert!(!audit.contains(t), "token in the audit log");
        // An authorization code crosses the store from /oauth/callback to `airlock connect`
        // (single-use, 10 minutes, worthless without the PKCE verifier); tokens never do.
        if !t.starts_with("code-") {
            let prefix: String = t.chars().take(12).collect();
            assert!(
                !db.windows(t.len()).any(|w| w == t.as_bytes()),
                "{prefix}… in the database in clear"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oauth2_connect_inject_refresh_single_flight_and_revocation() {
    let ttl = Duration::from_secs(2);
    let fake = Arc::new(FakeAuth::start(ttl, "basic").await);
    let up = resource(&fake).await;
    let env = [("MAIL_CLIENT_SECRET", CLIENT_SECRET)];
    let mut gw = Gateway::start_env(&[&up], &oauth_config(&fake), &[], &["mailbot"], &env);
    let c = gw.client("mailbot");
    let api = format!("https://localhost:{}/v1/messages", up.port);

    // Not connected yet: a clear refusal naming the connection.
    let r = c
        .get(&api)
        .bearer_auth("airlock-mail-placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = reason(r).await;
    assert!(
        body.contains("\"mail\"") && body.contains("airlock connect mail"),
        "{body}"
    );
    let list = text(&gw.cli(&["secret", "list"]));
    assert!(list.contains("not connected"), "{list}");

    // The callback must reach the control listener this gateway bound: tell `connect` where it is.
    let cfg = std::fs::read_to_string(&gw.config).unwrap();
    let cfg = cfg.replace(
        "placeholder = \"airlock-mail-placeholder\"",
        &format!(
            "placeholder = \"airlock-mail-placeholder\"\nredirect_uri = \"http://{}/oauth/callback\"",
            gw.control
        ),
    );
    std::fs::write(&gw.config, cfg).unwrap();
    connect_via_callback(&gw, "mail").await;
    assert_eq!(fake.st.code_grants.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Connected: the live access token reaches the API; the agent sees only its placeholder.
    let r = c
        .get(&api)
        .bearer_auth("airlock-mail-placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-echo"], "Bearer airlock-mail-placeholder");
    assert_eq!(r.text().await.unwrap(), "ok, you sent airlock-mail-placeholder");
    let sent = up.last();
    let token = sent
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_string();
    assert!(token.starts_with("ya29.e2e-access-") && fake.valid(&token));
    let list = text(&gw.cli(&["secret", "list"]));
    assert!(list.contains("oauth2: connected"), "{list}");

    // The token expires; 100 concurrent requests cause exactly one refresh.
    until_expired(ttl).await;
    let before = fake.st.refresh_grants.load(std::sync::atomic::Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (c, api) = (c.clone(), api.clone());
        tasks.push(tokio::spawn(async move {
            let r = c
                .get(&api)
                .bearer_auth("airlock-mail-placeholder")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("ya29."), "a token reached the agent");
    }
    let after = fake.st.refresh_grants.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - before, 1, "refreshes must be single-flight");

    // The authorization server revokes the grant: the next refresh fails, clearly, by name.
    fake.revoke_refresh_tokens();
    until_expired(ttl).await;
    let r = c
        .get(&api)
        .bearer_auth("airlock-mail-placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = reason(r).await;
    assert!(body.contains("\"mail\"") && body.contains("re-consent"), "{body}");
    let grants = fake.st.refresh_grants.load(std::sync::atomic::Ordering::SeqCst);
    // Failing fast afterwards: no more refresh attempts with a dead grant.
    let r = c
        .get(&api)
        .bearer_auth("airlock-mail-placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(fake.st.refresh_grants.load(std::sync::atomic::Ordering::SeqCst), grants);
    let list = text(&gw.cli(&["secret", "list"]));
    assert!(list.contains("NEEDS RE-CONSENT"), "{list}");

    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    assert!(audit.contains("needs re-consent"), "the refusal is audited");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert_no_token_leaked(&gw, &fake, &[CLIENT_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn github_app_token_for_the_api_as_bearer_and_for_git_as_basic() {
    let ttl = Duration::from_secs(3);
    let fake = Arc::new(FakeAuth::start(ttl, "post").await);
    fake.trust_app_key();
    let up = resource(&fake).await;
    let config = github_app_config(&fake);
    let mut gw = Gateway::start(&[&up], &config, &[("gh", APP_KEY)], &["coder"]);
    let c = gw.client("coder");
    let base = format!("https://localhost:{}", up.port);

    // The API, as gh and Octokit send it.
    let r = c
        .get(format!("{base}/repos/o/r"))
        .bearer_auth("airlock-gh-placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok, you sent airlock-gh-placeholder");
    let api_auth = up.last().header("authorization").unwrap().to_string();
    assert!(api_auth.starts_with("Bearer ghs_e2eInstallation"), "{api_auth}");

    // git over HTTPS: Basic with the placeholder as password becomes x-access-token:<token>.
    let r = c
        .get(format!("{base}/o/r.git/info/refs?service=git-upload-pack"))
        .basic_auth("x-access-token", Some("airlock-gh-placeholder"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let git_auth = up.last().header("authorization").unwrap().to_string();
    let decoded = String::from_utf8(STANDARD.decode(git_auth.strip_prefix("Basic ").unwrap()).unwrap()).unwrap();
    assert_eq!(
        decoded,
        format!("x-access-token:{}", api_auth.strip_prefix("Bearer ").unwrap())
    );
    // Both used the one cached installation token.
    assert_eq!(fake.st.installation_grants.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Near expiry a new one is minted with a new JWT.
    until_expired(ttl).await;
    let r = c
        .get(format!("{base}/repos/o/r"))
        .bearer_auth("airlock-gh-placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(fake.st.installation_grants.load(std::sync::atomic::Ordering::SeqCst), 2);

    gw.stop();
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert_no_token_leaked(&gw, &fake, &[]);
    let logs = gw.logs();
    assert!(!logs.contains("PRIVATE KEY"), "the App key in the logs");
}

/// Two gateway replicas (two token caches on separate connection pools of one store) whose token
/// is due at once: the store's lease lets one call the token endpoint; the other uses what it
/// commits. The rotated refresh token is what the store holds afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sharing_a_store_refresh_once() {
    use airlock_credentials::Tokens;
    use airlock_store::Store;
    use airlock_vault::{MasterKey, SecretBytes, Vault};

    let fake = Arc::new(FakeAuth::start(Duration::from_secs(60), "post").await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("airlock.db");
    let a = Store::create_sqlite(&db).await.unwrap();
    let b = Store::open(&db.display().to_string()).await.unwrap();
    let vault = Arc::new(Vault::new(MasterKey::generate()));
    let src = oauth_config(&fake)
        .replace("env:MAIL_CLIENT_SECRET", "vault:mail_client")
        .replace("client_auth = \"basic\"\n", "");
    let cfg = airlock_config::Config::parse(&src, std::path::Path::new("airlock.toml")).unwrap();
    let seal = |name: &str, v: &str| {
        let s = vault.seal(name, 1, &SecretBytes::new(v.as_bytes().to_vec()));
        airlock_credentials::tokens::row(&s, 0)
    };
    let first_refresh = fake.seed_refresh_token();
    a.put_secret(&seal("mail", &first_refresh)).await.unwrap();
    a.put_secret(&seal("mail_client", CLIENT_SECRET)).await.unwrap();

    let replicas = [
        Arc::new(Tokens::new(&cfg, a.clone(), vault.clone()).unwrap()),
        Arc::new(Tokens::new(&cfg, b.clone(), vault.clone()).unwrap()),
    ];
    let mut tasks = Vec::new();
    for i in 0..60 {
        let t = replicas[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            t.current("mail").await.map(|c| c.token.expose().to_vec())
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().expect("every request gets the token"));
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "both replicas inject the same token");
    assert!(fake.valid(std::str::from_utf8(&tokens[0]).unwrap()));
    assert_eq!(
        fake.st.refresh_grants.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one refresh in all"
    );
    // The fake rotated the refresh token; the store holds the new one, sealed.
    let row = b.get_secret("mail").await.unwrap().unwrap();
    assert_eq!(row.version, 2);
    let sealed_now = vault.open(&airlock_credentials::tokens::sealed(&row)).unwrap();
    assert_ne!(sealed_now.expose(), first_refresh.as_bytes());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
