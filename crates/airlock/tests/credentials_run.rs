//! OAuth2 connections and GitHub App installation tokens through `airlock run`: a process inside
//! a bubblewrap sandbox, holding only what `airlock run` gives it (the placeholder in its
//! variable, the gateway as `HTTPS_PROXY`, the sandbox CA), calls the bound host; the resource
//! server receives a live access / installation token minted by the gateway; its echo of the
//! token reaches the sandbox as the placeholder; and no token, refresh token, client secret or
//! App key is in the sandbox's environment, its files or the run's output.
mod fake_auth;
mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fake_auth::{APP_KEY, CLIENT_SECRET, FakeAuth, github_app_config, oauth_config, resource};
use support::bwrap::{bwrap_python, with_needle_scan};
use support::*;

/// Python's standard library with nothing but its environment: `urllib` follows `HTTPS_PROXY`
/// and `ssl` trusts `SSL_CERT_FILE`. Sends `Authorization: <scheme> <the variable's value>` to
/// the URL; prints the value it holds, the answer and its echo header and its whole environment
/// (then [`with_needle_scan`]: needles in hex, so this script does not hold them).
const AGENT: &str = r#"
import base64, json, os, sys, urllib.request
url, var, scheme, needles = sys.argv[1], sys.argv[2], sys.argv[3], [bytes.fromhex(h) for h in sys.argv[4:]]
held = os.environ[var]
auth = "Bearer " + held if scheme == "bearer" else \
    "Basic " + base64.b64encode(("x-access-token:" + held).encode()).decode()
with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth})) as r:
    print(json.dumps({"held": held, "status": r.status, "body": r.read().decode(),
        "echo": r.headers.get("x-echo"), "env": dict(os.environ)}))
"#;

/// Runs [`AGENT`] as `agent` inside `airlock run --runtime bwrap`: (its report, its files holding
/// a needle, the run's whole output).
async fn run_agent(
    gw: &Gateway,
    agent: &str,
    url: &str,
    (var, scheme): (&str, &str),
    needles: &[&str],
) -> (serde_json::Value, Vec<String>, String) {
    let prefix = bwrap_python("ssl");
    let python = format!("{prefix}/bin/python3");
    let mut args = vec![
        python.clone(),
        "-c".into(),
        with_needle_scan(AGENT),
        url.into(),
        var.into(),
        scheme.into(),
    ];
    args.extend(needles.iter().map(hex::encode));
    let o = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&gw.config)
        .args(["run", "--agent", agent, "--runtime", "bwrap", "--mount"])
        .arg(format!("{prefix}:{prefix}:ro"))
        .arg("--")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = out.lines();
    let report = serde_json::from_str(lines.next().unwrap_or_default()).unwrap();
    let found = serde_json::from_str(lines.next().unwrap_or_default()).unwrap();
    (report, found, text(&o))
}

/// Every token `fake` issued is nowhere in the sandbox's report or output, nor the gateway's logs
/// or audit; nor are `also`.
fn assert_nothing_real_leaked(gw: &Gateway, fake: &FakeAuth, report: &serde_json::Value, output: &str, also: &[&str]) {
    let (logs, audit) = (gw.logs(), serde_json::to_string(&gw.audit()).unwrap());
    let report = report.to_string();
    let issued = fake.issued();
    assert!(!issued.is_empty());
    for t in issued.iter().map(String::as_str).chain(also.iter().copied()) {
        assert!(
            !report.contains(t) && !output.contains(t),
            "a real token inside the sandbox: {report}"
        );
        assert!(!logs.contains(t), "a real token in the gateway's logs");
        assert!(!audit.contains(t), "a real token in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_access_token_is_injected_for_a_process_inside_bwrap() {
    let fake = Arc::new(FakeAuth::start(Duration::from_secs(600), "basic").await);
    let up = resource(&fake).await;
    let config = oauth_config(&fake);
    // Connected as `airlock connect` leaves it: the refresh token sealed under the secret's name.
    let refresh = fake.seed_refresh_token();
    let mut gw = Gateway::start_env(
        &[&up],
        &config,
        &[("mail", &refresh)],
        &[],
        &[("MAIL_CLIENT_SECRET", CLIENT_SECRET)],
    );
    let url = format!("https://localhost:{}/gmail/v1/users/me/messages/send", up.port);
    let (r, found, output) = run_agent(
        &gw,
        "mailbot",
        &url,
        ("MAIL_TOKEN", "bearer"),
        &[&refresh, CLIENT_SECRET],
    )
    .await;
    // The process held the placeholder; the resource server got a live access token for it ...
    assert_eq!(r["held"], "airlock-mail-placeholder", "{r}");
    assert_eq!(r["status"], 200, "{r}");
    let sent = up.last().header("authorization").unwrap().to_string();
    let token = sent.strip_prefix("Bearer ").unwrap_or_default();
    assert!(token.starts_with("ya29.e2e-access-") && fake.valid(token), "{sent}");
    // ... and its echo of the token (body and header) came back as the placeholder.
    assert_eq!(r["body"], "ok, you sent airlock-mail-placeholder", "{r}");
    assert_eq!(r["echo"], "Bearer airlock-mail-placeholder", "{r}");
    assert!(found.is_empty(), "a real secret inside the sandbox: {found:?}");
    gw.stop();
    assert_nothing_real_leaked(&gw, &fake, &r, &output, &[CLIENT_SECRET]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_installation_token_is_injected_for_a_process_inside_bwrap() {
    let fake = Arc::new(FakeAuth::start(Duration::from_secs(600), "post").await);
    fake.trust_app_key();
    let up = resource(&fake).await;
    let config = github_app_config(&fake);
    let mut gw = Gateway::start(&[&up], &config, &[("gh", APP_KEY)], &[]);
    // A line of the App's private key: the needle that proves the PEM is not in the sandbox.
    let key_line = APP_KEY.lines().nth(1).unwrap_or_default();
    let base = format!("https://localhost:{}", up.port);

    // The API, as gh sends it: Bearer.
    let (r, found, out_api) = run_agent(
        &gw,
        "coder",
        &format!("{base}/repos/o/r"),
        ("GH_TOKEN", "bearer"),
        &[key_line],
    )
    .await;
    assert_eq!(r["held"], "airlock-gh-placeholder", "{r}");
    assert_eq!(r["status"], 200, "{r}");
    let sent = up.last().header("authorization").unwrap().to_string();
    assert!(sent.starts_with("Bearer ghs_e2eInstallation"), "{sent}");
    assert_eq!(r["body"], "ok, you sent airlock-gh-placeholder", "{r}");
    assert_eq!(r["echo"], "Bearer airlock-gh-placeholder", "{r}");
    assert!(found.is_empty(), "the App key inside the sandbox: {found:?}");

    // git over HTTPS: Basic x-access-token with the placeholder as password.
    let git = format!("{base}/o/r.git/info/refs?service=git-upload-pack");
    let (r_git, found, out_git) = run_agent(&gw, "coder", &git, ("GH_TOKEN", "basic"), &[key_line]).await;
    assert_eq!(r_git["status"], 200, "{r_git}");
    assert_eq!(r_git["body"], "ok, you sent airlock-gh-placeholder", "{r_git}");
    assert!(found.is_empty(), "the App key inside the sandbox: {found:?}");
    assert!(up.last().header("authorization").unwrap().starts_with("Basic "));
    // The echoed Basic header, decoded, holds the placeholder: its base64 form was scrubbed too,
    // to its last bit (the token ends the encoded input, so its last character is a pattern).
    let echo = r_git["echo"]
        .as_str()
        .unwrap_or_default()
        .strip_prefix("Basic ")
        .unwrap_or_default();
    let decoded = String::from_utf8_lossy(&STANDARD.decode(echo).unwrap_or_default()).into_owned();
    assert_eq!(decoded, "x-access-token:airlock-gh-placeholder", "{r_git}");
    assert!(!fake.issued().iter().any(|t| decoded.contains(t.as_str())), "{r_git}");

    gw.stop();
    assert_nothing_real_leaked(&gw, &fake, &r, &out_api, &[key_line]);
    assert_nothing_real_leaked(&gw, &fake, &r_git, &out_git, &[]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
