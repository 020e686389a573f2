//! `airlock approvals …`: the terminal as an approval surface. It talks to the running
//! gateway's control plane with the control token; whoever holds that token is an operator
//! and votes *as* a configured person (`--as`), recorded with channel "cli".

use std::io::{BufRead, Write};
use std::path::Path;

use airlock_channels::text::{json_visible, one_line, visible};
use anyhow::{Context, bail};
use serde_json::Value;

use crate::home::Home;

pub struct Control {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Control {
    /// The control plane named by `AIRLOCK_CONTROL_URL`, else the config's `gateway.control`.
    pub fn open(cfg: &Path) -> anyhow::Result<Control> {
        let home = Home::load(cfg)?;
        let base = match std::env::var("AIRLOCK_CONTROL_URL") {
            Ok(u) if !u.is_empty() => u.trim_end_matches('/').to_string(),
            _ => {
                let mut a = home.config.gateway.control;
                if a.ip().is_unspecified() {
                    a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{a}")
            }
        };
        let path = home.control_token_path();
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the control token {}", path.display()))?
            .trim()
            .to_string();
        Ok(Control {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.bearer_auth(&self.token).send().await.with_context(|| {
            format!(
                "cannot reach the control plane at {} (is `airlock serve` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"].as_str().unwrap_or("request failed");
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok(body)
    }

    pub async fn list(&self, all: bool) -> anyhow::Result<Value> {
        let state = if all { "all" } else { "pending" };
        self.call(self.http.get(format!("{}/api/v1/approvals?state={state}", self.base)))
            .await
    }

    pub async fn show(&self, id: &str) -> anyhow::Result<Value> {
        self.call(self.http.get(format!("{}/api/v1/approvals/{id}", self.base)))
            .await
    }

    pub async fn vote(&self, id: &str, person: &str, decision: &str) -> anyhow::Result<Value> {
        let body = serde_json::json!({ "person": person, "decision": decision });
        self.call(
            self.http
                .post(format!("{}/api/v1/approvals/{id}/vote", self.base))
                .json(&body),
        )
        .await
    }

    pub async fn status(&self) -> anyhow::Result<Value> {
        self.call(self.http.get(format!("{}/api/v1/status", self.base))).await
    }

    pub async fn reload_policy(&self) -> anyhow::Result<Value> {
        self.call(self.http.post(format!("{}/api/v1/policy/reload", self.base)))
            .await
    }

    /// Tells a running gateway that agents or secrets changed in the store. `Ok(false)` when no
    /// gateway listens (it reads the store when it starts).
    pub async fn reload_identities(&self) -> anyhow::Result<bool> {
        let req = self
            .http
            .post(format!("{}/api/v1/identities/reload", self.base))
            .timeout(std::time::Duration::from_secs(5));
        match self.call(req).await {
            Ok(_) => Ok(true),
            Err(e) if e.downcast_ref::<reqwest::Error>().is_some_and(|e| e.is_connect()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn grants(&self) -> anyhow::Result<Value> {
        self.call(self.http.get(format!("{}/api/v1/grants", self.base))).await
    }

    pub async fn revoke(&self, id: &str, by: &str) -> anyhow::Result<Value> {
        self.call(self.http.delete(format!("{}/api/v1/grants/{id}?by={by}", self.base)))
            .await
    }
}

fn age(ms: u64) -> String {
    let now = crate::home::now_ms().max(0) as u64;
    let s = now.saturating_sub(ms) / 1000;
    if s < 120 {
        format!("{s}s")
    } else {
        format!("{}m", s / 60)
    }
}

/// A string field of a JSON answer on one line, every deceptive character made visible: what
/// the agent sent never drives the operator's terminal.
fn field(v: &Value) -> String {
    one_line(v.as_str().unwrap_or(""))
}

/// JSON for the terminal: the same value, with C1 controls and bidi overrides as `\u` escapes.
fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", json_visible(&serde_json::to_string_pretty(v)?));
    Ok(())
}

/// The plain statement of what a listing left out, if anything.
fn not_shown(v: &Value, what: &str) -> Option<String> {
    let n = v["not_shown"].as_u64().filter(|&n| n > 0)?;
    Some(format!(
        "… {n} more {what} not shown ({} in all, listed {})",
        v["total"].as_u64().unwrap_or(0),
        v["order"].as_str().unwrap_or("")
    ))
}

pub async fn list(cfg: &Path, all: bool, json: bool) -> anyhow::Result<()> {
    let v = Control::open(cfg)?.list(all).await?;
    if json {
        return print_json(&v);
    }
    let what = if all { "approvals" } else { "pending approvals" };
    let items = v["approvals"].as_array().cloned().unwrap_or_default();
    let left_out = not_shown(&v, what);
    if items.is_empty() && left_out.is_none() {
        println!("no {what}");
        return Ok(());
    }
    println!("{:<13} {:>5}  {:<10} {:<10} REQUEST", "ID", "AGE", "STATE", "AGENT");
    for a in items {
        let c = &a["card"];
        // Agent text is printed through the card's own one-line rendering rules.
        let line = one_line(&format!(
            "{} {}{}",
            c["method"].as_str().unwrap_or(""),
            c["host"].as_str().unwrap_or(""),
            c["path"].as_str().unwrap_or("")
        ));
        let line: String = line.chars().take(80).collect();
        println!(
            "{:<13} {:>5}  {:<10} {:<10} {line}",
            field(&c["id"]),
            age(c["created_ms"].as_u64().unwrap_or(0)),
            field(&a["status"]["state"]),
            field(&c["agent"]),
        );
    }
    if let Some(line) = left_out {
        println!("{line}");
    }
    Ok(())
}

pub async fn show(cfg: &Path, id: &str) -> anyhow::Result<()> {
    let v = Control::open(cfg)?.show(id).await?;
    print!("{}", visible(v["terminal"].as_str().unwrap_or("")));
    Ok(())
}

pub async fn vote(cfg: &Path, id: &str, person: &str, decision: &str) -> anyhow::Result<()> {
    let v = Control::open(cfg)?.vote(id, person, decision).await?;
    report(&v, person);
    Ok(())
}

fn report(v: &Value, person: &str) {
    match v["state"].as_str() {
        Some("pending") => println!(
            "{person}'s vote counted; still waiting (approved so far by {})",
            v["approved_by"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        Some(s) => println!("{person}'s vote counted: the request is {}", one_line(s)),
        None => println!("{}", json_visible(&v.to_string())),
    }
}

pub async fn grants(cfg: &Path) -> anyhow::Result<()> {
    let v = Control::open(cfg)?.grants().await?;
    let items = v.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no live grants");
    }
    for g in items {
        println!(
            "{}  agent {}  rule \"{}\"  host {}  by {}  {} left",
            field(&g["id"]),
            field(&g["agent"]),
            field(&g["rule"]),
            field(&g["host"]),
            field(&g["granted_by"]),
            age_left(g["expires_ms"].as_u64().unwrap_or(0))
        );
    }
    Ok(())
}

fn age_left(ms: u64) -> String {
    let now = crate::home::now_ms().max(0) as u64;
    format!("{}s", ms.saturating_sub(now) / 1000)
}

pub async fn revoke(cfg: &Path, id: &str, by: &str) -> anyhow::Result<()> {
    Control::open(cfg)?.revoke(id, by).await?;
    println!("grant {id} revoked");
    Ok(())
}

/// Prints each new pending approval as it arrives; with `--as`, asks for a decision.
pub async fn watch(cfg: &Path, person: Option<&str>) -> anyhow::Result<()> {
    let c = Control::open(cfg)?;
    let resp = c
        .http
        .get(format!("{}/api/v1/events", c.base))
        .bearer_auth(&c.token)
        .send()
        .await
        .with_context(|| format!("cannot reach the control plane at {}", c.base))?;
    if !resp.status().is_success() {
        bail!(
            "the control plane refused the event stream (HTTP {})",
            resp.status().as_u16()
        );
    }
    let mut seen = std::collections::HashSet::new();
    // Requests already waiting are shown first, oldest first.
    let waiting = c.list(false).await?;
    for a in waiting["approvals"].as_array().cloned().unwrap_or_default() {
        if let Some(id) = a["card"]["id"].as_str() {
            seen.insert(id.to_string());
            prompt(&c, id, person).await?;
        }
    }
    if let Some(line) = not_shown(&waiting, "pending approvals") {
        println!("{line}: see them with `airlock approvals list` once these are decided");
    }
    eprintln!("airlock: watching for approvals (Ctrl-C to stop)");
    let mut resp = resp;
    let mut buf = String::new();
    while let Some(chunk) = resp.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let ev: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
            if let (Some(id), Some("pending")) = (ev["id"].as_str(), ev["state"].as_str())
                && seen.insert(id.to_string())
            {
                prompt(&c, id, person).await?;
            }
        }
    }
    Ok(())
}

async fn prompt(c: &Control, id: &str, person: Option<&str>) -> anyhow::Result<()> {
    let v = c.show(id).await?;
    // Rendered inert by the gateway already; made visible again in case of an older one.
    println!("{}", visible(v["terminal"].as_str().unwrap_or("")));
    let Some(person) = person else {
        println!("decide with: airlock approvals approve {id} --as PERSON   (or deny)");
        return Ok(());
    };
    let grant = v["card"]["grant_secs"].is_u64();
    print!(
        "approve as {person}? [a]pprove, [d]eny{}, [s]kip: ",
        if grant { ", [g]rant" } else { "" }
    );
    std::io::stdout().flush()?;
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await??;
    let decision = match answer.trim() {
        "a" | "approve" | "y" | "yes" => "approve",
        "d" | "deny" | "n" | "no" => "deny",
        "g" | "grant" if grant => "grant",
        _ => {
            println!("skipped");
            return Ok(());
        }
    };
    match c.vote(id, person, decision).await {
        Ok(v) => report(&v, person),
        Err(e) => println!("not counted: {e:#}"),
    }
    Ok(())
}
