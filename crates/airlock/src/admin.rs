//! Operator commands that manage agents, secrets, the vault, the policy and the audit log.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use airlock_core::audit::AuditEvent;
use airlock_store::AgentRow;
use airlock_vault::{MasterKey, SecretBytes, Vault};
use anyhow::{Context, bail};

use crate::home::{Home, MASTER_KEY_ENV, is_internal, now_ms, random_token, row, sealed};

/// After a change to agents or secrets in the store: a running gateway takes it at once (on
/// PostgreSQL every replica also hears of it from the store). No gateway running is fine.
/// A gateway that answers but could not read agents and secrets again (a secret it cannot
/// unseal, a store it cannot read) is an error: it keeps the previous ones in force, and the
/// operator must hear that the change is not in force.
async fn tell_running_gateway(cfg: &Path) -> anyhow::Result<()> {
    let told = match crate::approvals_cli::Control::open(cfg) {
        Ok(c) => c.reload_identities().await,
        // No control token yet: no gateway has ever run with this data directory.
        Err(_) => Ok(false),
    };
    match told {
        Ok(_) => Ok(()),
        // Not answered (not running, timed out): the gateway polls the store itself.
        Err(e) if e.downcast_ref::<reqwest::Error>().is_some() => {
            eprintln!("note: could not tell the running gateway ({e:#}); it reads the store again within 2 s");
            Ok(())
        }
        Err(e) => bail!("the store was changed, but the running gateway refused to reload agents and secrets: {e:#}"),
    }
}

pub async fn agent_add(cfg: &Path, name: &str) -> anyhow::Result<()> {
    let home = Home::load(cfg)?;
    if name.contains('*') {
        bail!("\"{name}\" is a glob: issue a token for one agent it matches");
    }
    if home.config.agent(name).is_none() {
        bail!(
            "agent \"{name}\" is not declared in {}: add [[agents]] name = \"{name}\" first",
            home.config.path.display()
        );
    }
    let opened = home.open().await?;
    let token = random_token();
    let hash = airlock_gateway::token_hash(&token).to_vec();
    opened
        .store
        .add_agent(&AgentRow {
            name: name.to_string(),
            token_hash: hash,
            created_ms: now_ms(),
        })
        .await
        .with_context(|| format!("cannot add agent \"{name}\" (remove it first with: airlock agent rm {name})"))?;
    let listen = home.config.gateway.listen;
    eprintln!("agent \"{name}\" added; its token is shown once, below. Give the agent this proxy URL:");
    println!("http://{name}:{token}@{}:{}", listen.ip(), listen.port());
    // After the token is shown: it is stored either way, and must not be lost to a refusal.
    tell_running_gateway(cfg).await?;
    Ok(())
}

pub async fn agent_list(cfg: &Path) -> anyhow::Result<()> {
    let home = Home::load(cfg)?;
    let opened = home.open().await?;
    let issued = opened.store.list_agents().await?;
    for a in &home.config.agents {
        let token = if a.is_glob() {
            "glob: grants to the agents it matches"
        } else if issued.iter().any(|r| r.name == a.name) {
            "token issued"
        } else {
            "no token"
        };
        println!("{}\tsecrets: {}\t{token}", a.name, a.secrets.join(","));
    }
    for r in issued.iter().filter(|r| home.config.agent(&r.name).is_none()) {
        println!("{}\t(not declared in the config: its token is inert)", r.name);
    }
    Ok(())
}

pub async fn agent_rm(cfg: &Path, name: &str) -> anyhow::Result<()> {
    let opened = Home::load(cfg)?.open().await?;
    if !opened.store.remove_agent(name).await? {
        bail!("no agent \"{name}\" has a token");
    }
    tell_running_gateway(cfg).await?;
    println!("removed agent \"{name}\"; its token no longer works");
    Ok(())
}

/// `airlock person passwd NAME`: the dashboard password of a configured person, read from
/// stdin (first line) and stored only as an argon2id hash.
pub async fn person_passwd(cfg: &Path, name: &str) -> anyhow::Result<()> {
    let home = Home::load(cfg)?;
    if !home.config.people.iter().any(|p| p.name == name) {
        bail!(
            "\"{name}\" is not a person in {}: add [people.{name}] with roles first",
            home.config.path.display()
        );
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.chars().count() < 12 {
        bail!("the password must have at least 12 characters (pipe it on stdin)");
    }
    let hash = airlock_web::dashboard::hash_password(pw).map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    let opened = home.open().await?;
    opened.store.set_password(name, &hash, now_ms()).await?;
    println!("dashboard password set for {name}");
    Ok(())
}

pub async fn secret_set(cfg: &Path, name: &str) -> anyhow::Result<()> {
    let home = Home::load(cfg)?;
    let client_secret = home.config.credentials.iter().any(|c| match &c.kind {
        airlock_config::CredentialKind::OAuth2(o) => {
            o.client_secret == Some(airlock_config::SecretRef::Vault(name.into()))
        }
        // An AWS secret's access key id and session token may be sealed under names of their own.
        airlock_config::CredentialKind::Aws(a) => {
            let r = Some(airlock_config::SecretRef::Vault(name.into()));
            Some(&a.access_key_id) == r.as_ref() || a.session_token == r
        }
        _ => false,
    });
    // A database password referenced as vault:NAME needs no [secrets.NAME]: it is never injected into HTTP.
    let database_password = home
        .config
        .databases
        .iter()
        .any(|d| d.password == airlock_config::SecretRef::Vault(name.into()));
    if home.config.secrets.get(name).is_none() && !client_secret && !database_password {
        bail!(
            "secret \"{name}\" is not declared in {}: add [secrets.{name}] (or a vault:{name} reference) first",
            home.config.path.display()
        );
    }
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .context("cannot read the secret from stdin")?;
    let mut value = SecretBytes::new(raw);
    // One trailing newline is how shells and `echo` end input, not part of the secret.
    let trimmed = value
        .expose()
        .strip_suffix(b"\n")
        .map(|v| v.strip_suffix(b"\r").unwrap_or(v));
    if let Some(t) = trimmed {
        value = SecretBytes::new(t.to_vec());
    }
    if value.is_empty() {
        bail!("empty secret: pipe the value on stdin, e.g. `printf %s \"$TOKEN\" | airlock secret set {name}`");
    }
    let opened = home.open().await?;
    let version = opened.store.get_secret(name).await?.map_or(1, |r| r.version + 1);
    let version = u32::try_from(version).context("secret version overflow")?;
    opened
        .store
        .put_secret(&row(&opened.vault.seal(name, version, &value), now_ms()))
        .await?;
    tell_running_gateway(cfg).await?;
    println!("sealed secret \"{name}\" (version {version})");
    Ok(())
}

pub async fn secret_list(cfg: &Path) -> anyhow::Result<()> {
    let home = Home::load(cfg)?;
    let opened = home.open().await?;
    let rows = opened.store.list_secrets().await?;
    let statuses = opened.store.credential_statuses().await?;
    for d in &home.config.secrets.decls {
        let mut state = rows
            .iter()
            .find(|r| r.name == d.name)
            .map_or("not set".to_string(), |r| format!("v{}", r.version));
        if let Some(c) = home.config.credential(&d.name) {
            let access = airlock_credentials::access_row_name(&d.name);
            state = match &c.kind {
                airlock_config::CredentialKind::OAuth2(_)
                    if statuses
                        .iter()
                        .any(|(n, s)| *n == d.name && s == airlock_store::NEEDS_CONSENT) =>
                {
                    format!("oauth2: NEEDS RE-CONSENT (run: airlock connect {})", d.name)
                }
                airlock_config::CredentialKind::OAuth2(_)
                    if rows.iter().any(|r| r.name == d.name || r.name == access) =>
                {
                    "oauth2: connected".to_string()
                }
                airlock_config::CredentialKind::OAuth2(_) => {
                    format!("oauth2: not connected (run: airlock connect {})", d.name)
                }
                airlock_config::CredentialKind::GithubApp(_)
                    if statuses
                        .iter()
                        .any(|(n, s)| *n == d.name && s == airlock_store::NEEDS_CONSENT) =>
                {
                    "github_app: REFUSED by GitHub (check the key, app id and installation)".to_string()
                }
                airlock_config::CredentialKind::GithubApp(_) => format!("github_app: private key {state}"),
                airlock_config::CredentialKind::Aws(_) => format!("aws: secret access key {state}"),
            };
        }
        let hosts: Vec<String> = d.hosts.iter().map(|h| h.to_string()).collect();
        println!(
            "{}\thosts: {}\tplaceholder: {}\t{state}",
            d.name,
            hosts.join(","),
            d.placeholder
        );
    }
    for r in rows
        .iter()
        .filter(|r| !is_internal(&r.name) && !r.name.contains('#') && home.config.secrets.get(&r.name).is_none())
    {
        println!("{}\t(sealed, but not declared in the config: never injected)", r.name);
    }
    Ok(())
}

pub async fn secret_rm(cfg: &Path, name: &str) -> anyhow::Result<()> {
    if is_internal(name) {
        bail!("{name} is airlock's own key (audit signing or approval buttons) and cannot be removed");
    }
    let opened = Home::load(cfg)?.open().await?;
    if !opened.store.remove_secret(name).await? {
        bail!("no secret \"{name}\" is sealed");
    }
    tell_running_gateway(cfg).await?;
    println!("removed secret \"{name}\"");
    Ok(())
}

/// Re-seals everything under a new master key in one transaction. The new key is written
/// to disk *before* the commit, so an interruption never leaves the vault without its key.
pub async fn rotate_key(cfg: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let home = Home::load(cfg)?;
    let opened = home.open().await?;
    let new_key = MasterKey::generate();
    let new_id = new_key.key_id();
    let from_env = std::env::var(MASTER_KEY_ENV).is_ok();
    let staged = match (from_env, out) {
        (true, None) => bail!("{MASTER_KEY_ENV} is set: pass --out FILE to receive the new key"),
        (_, Some(p)) => p.to_path_buf(),
        (false, None) => home.master_key_path().with_extension("key.new"),
    };
    if out.is_none() {
        // A stale staged key from an earlier, interrupted rotation is not in use: the vault opened with the current key.
        let _ = std::fs::remove_file(&staged);
    }
    new_key.write_new_file(&staged)?;
    let new_vault = Vault::new(new_key);
    let mut rows = Vec::new();
    for r in opened.store.list_secrets().await? {
        let resealed = opened.vault.reseal(&new_vault, &sealed(&r))?;
        rows.push(row(&resealed, now_ms()));
    }
    opened.store.replace_secrets_atomically(&rows).await?;
    if out.is_none() {
        std::fs::rename(&staged, home.master_key_path())?;
        println!("re-sealed {} secrets under the new master key {new_id}", rows.len());
    } else {
        println!(
            "re-sealed {} secrets under the new master key {new_id}, written to {}; set {MASTER_KEY_ENV} to it",
            rows.len(),
            staged.display()
        );
    }
    Ok(())
}

/// Validates the file, then runs its `[[tests]]`: exit 1 when one fails.
pub fn policy_check(cfg: &Path) -> anyhow::Result<ExitCode> {
    let home = Home::load(cfg)?;
    let c = &home.config;
    println!(
        "{}: ok — {} rules, {} secrets, {} agents, default {}",
        c.path.display(),
        c.policy.rules.len(),
        c.secrets.decls.len(),
        c.agents.len(),
        c.policy.default.as_str()
    );
    if c.tests.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let failed = crate::explain::run_cases(c)?;
    if failed == 0 {
        println!("{} tests passed", c.tests.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} of {} tests failed", c.tests.len());
        Ok(ExitCode::from(1))
    }
}

/// Asks the running gateway to load the config file again. The file is validated here first
/// (file:line:key on error), then by the gateway, which may still refuse a change that needs a
/// restart; either way the policy in force stays and the command fails.
pub async fn policy_reload(cfg: &Path) -> anyhow::Result<()> {
    let control = crate::approvals_cli::Control::open(cfg)?;
    let r = control.reload_policy().await.context("the policy was not reloaded")?;
    let names = |k: &str| {
        r[k].as_array()
            .map(|v| v.iter().filter_map(|n| n.as_str()).collect::<Vec<_>>().join(", "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    println!("policy reloaded: sha256 {}", r["sha256_after"].as_str().unwrap_or("?"));
    println!("  added:   {}", names("added"));
    println!("  removed: {}", names("removed"));
    println!("  changed: {}", names("changed"));
    println!("  held approvals refused: {}", names("refused"));
    Ok(())
}

/// `airlock status`: what the running gateway reports of itself.
pub async fn status(cfg: &Path, json: bool) -> anyhow::Result<()> {
    let control = crate::approvals_cli::Control::open(cfg)?;
    let s = control.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let uptime = s["uptime_secs"].as_u64().unwrap_or(0);
    println!("airlock {}", s["version"].as_str().unwrap_or("?"));
    println!("  up {}", airlock_channels::render::duration(uptime));
    println!(
        "  policy: {} rules, default {}, config sha256 {}",
        s["policy"]["rules"],
        s["policy"]["default"].as_str().unwrap_or("?"),
        s["policy"]["sha256"].as_str().unwrap_or("?")
    );
    match s["approvals"]["configured"].as_bool() {
        Some(true) => {
            let channels: Vec<&str> = s["approvals"]["channels"]
                .as_array()
                .map(|v| v.iter().filter_map(|c| c.as_str()).collect())
                .unwrap_or_default();
            println!(
                "  approvals: {} pending; channels: {}",
                s["approvals"]["pending"],
                if channels.is_empty() {
                    "terminal and dashboard only".to_string()
                } else {
                    channels.join(", ")
                }
            );
        }
        _ => println!("  approvals: not configured (approve rules deny)"),
    }
    for c in s["approvals"]["channel_health"].as_array().into_iter().flatten() {
        let at = |k: &str| c[k].as_u64().map(airlock_channels::render::utc_datetime);
        let ok = at("last_ok_ms").map_or("no card yet".to_string(), |t| format!("last card {t}"));
        match (at("last_error_ms"), c["last_error"].as_str()) {
            (Some(t), Some(e)) => println!(
                "    {}: {ok}; last error {t}: {}",
                c["name"].as_str().unwrap_or("?"),
                airlock_channels::text::one_line(e)
            ),
            _ => println!("    {}: {ok}", c["name"].as_str().unwrap_or("?")),
        }
    }
    let replicas = s["replicas"].as_array().map(Vec::as_slice).unwrap_or_default();
    if replicas.len() > 1 {
        println!("  replicas sharing the store:");
        for r in replicas {
            println!(
                "    {}{}: config sha256 {}",
                r["id"].as_str().unwrap_or("?"),
                if r["this"] == true { " (this one)" } else { "" },
                r["policy_sha256"].as_str().unwrap_or("not recorded")
            );
        }
    }
    if s["approvals"]["lease_live"] == false {
        println!("  replica lease: LAPSED (other replicas may abandon what this one holds)");
    }
    println!(
        "  audit log: {}",
        if s["ready"].as_bool() == Some(true) {
            "writable"
        } else {
            "UNAVAILABLE (requests are refused)"
        }
    );
    Ok(())
}

pub async fn audit_verify(cfg: &Path) -> anyhow::Result<ExitCode> {
    let home = Home::load(cfg)?;
    let anchor_path = home.config.gateway.data_dir.join(airlock_store::anchor::ANCHOR_FILE);
    let opened = home.open().await?;
    let pk = opened.signer.public_key();
    let verify = |pk: &[u8], msg: &[u8], sig: &[u8]| {
        <[u8; 32]>::try_from(pk).is_ok_and(|k| airlock_vault::verify_signature(&k, msg, sig))
    };
    // The anchor first: a chain rewritten with its checkpoints removed verifies on its own.
    let anchor = match airlock_store::anchor::read(&anchor_path) {
        Ok(a) => a,
        Err(e) => {
            println!("audit chain BROKEN: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(a) = &anchor
        && let Err(e) = airlock_store::anchor::check(&opened.store, a, verify, &pk).await
    {
        println!("audit chain BROKEN: {e}");
        return Ok(ExitCode::FAILURE);
    }
    match airlock_store::verify_chain(&opened.store, verify, &pk).await {
        Ok(r) => {
            println!(
                "audit chain intact: {} records, {} signed checkpoints",
                r.records, r.checkpoints
            );
            match &anchor {
                Some(a) => println!("anchored at seq {} ({})", a.seq, anchor_path.display()),
                None => println!("no anchor file yet ({}): nothing to compare", anchor_path.display()),
            }
            println!("{} records after the last signed checkpoint", r.unsigned_tail);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("audit chain BROKEN: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn audit_tail(cfg: &Path, n: i64, json: bool) -> anyhow::Result<()> {
    let opened = Home::load(cfg)?.open().await?;
    for r in opened.store.audit_tail(n).await? {
        let ev: Result<AuditEvent, _> = serde_json::from_slice(&r.body);
        match (ev, json) {
            (Ok(ev), true) => {
                let mut v = serde_json::to_value(&ev)?;
                v["seq"] = r.seq.into();
                v["hash"] = hex::encode(&r.hash).into();
                // Paths, hosts and reasons are the agent's text: C1 controls and bidi
                // overrides leave as `\u` escapes, never raw to the terminal.
                println!("{}", airlock_channels::text::json_visible(&v.to_string()));
            }
            (Ok(ev), false) => println!("{}", crate::demo::audit_line(r.seq, &ev)),
            (Err(_), _) => println!("#{} <corrupted record: run airlock audit verify>", r.seq),
        }
    }
    Ok(())
}
