//! Policy hot reload (`airlock policy reload`, `SIGHUP`): the config file is read and validated
//! again, and when only `[[rules]]` (and `gateway.default`) changed, the new policy is swapped in
//! atomically. Requests already decided keep their decision; new requests see the new policy;
//! held approvals stay held unless every rule that held them is gone or now denies (then they
//! are refused with that reason and their cards closed). Anything else that changed needs a
//! restart and is named in the refusal; the old policy then stays in force.

use std::path::PathBuf;
use std::sync::Arc;

use airlock_config::Config;
use airlock_core::audit::AuditEvent;
use airlock_core::policy::{Action, Policy};
use airlock_gateway::GatewayState;
use airlock_store::{AuditHandle, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// What a reload did, as the control plane answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reloaded {
    pub sha256_before: String,
    pub sha256_after: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Held approvals refused because their rules no longer hold them.
    pub refused: Vec<String>,
}

pub struct Reloader {
    path: PathBuf,
    state: Arc<GatewayState>,
    hub: Option<airlock_approvals::Hub>,
    audit: AuditHandle,
    /// Replicas sharing it hear of each reload, and see which policy each replica runs.
    store: Store,
    /// The config in force and its file's SHA-256; one reload at a time.
    current: Mutex<(Config, String)>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The file's SHA-256 as loaded at startup (a file edited since then reads as changed anyway).
pub fn file_sha256(cfg: &Config) -> String {
    std::fs::read(&cfg.path).map(|b| sha256_hex(&b)).unwrap_or_default()
}

/// The parts of the config a running gateway cannot take without a restart, if they changed.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let g = (&old.gateway, &new.gateway);
    let mut out = Vec::new();
    for (changed, what) in [
        (g.0.listen != g.1.listen, "gateway.listen"),
        (g.0.control != g.1.control, "gateway.control"),
        (g.0.data_dir != g.1.data_dir, "gateway.data_dir"),
        (g.0.allow_private != g.1.allow_private, "gateway.allow_private"),
        (g.0.upstream_ca != g.1.upstream_ca, "gateway.upstream_ca"),
        (g.0.timeouts != g.1.timeouts, "gateway timeouts"),
        (g.0.drain_timeout != g.1.drain_timeout, "gateway.drain_timeout"),
        (old.store != new.store, "[store]"),
        (old.agents != new.agents, "[[agents]]"),
        (
            old.secrets.decls != new.secrets.decls || old.credentials != new.credentials,
            "[secrets]",
        ),
        (old.people != new.people, "[people]"),
        (old.channels != new.channels, "[channels]"),
        (old.approvals != new.approvals, "[approvals]"),
        (old.onecli != new.onecli, "[compat.onecli]"),
        (g.0.postgres_listen != g.1.postgres_listen, "gateway.postgres_listen"),
        (old.databases != new.databases, "[databases]"),
        // The database leg decides on the policy it started with: a change must not pass as applied.
        (
            old.database_policy.rules != new.database_policy.rules,
            "database rules (rules with databases = [...])",
        ),
    ] {
        if changed {
            out.push(what);
        }
    }
    out
}

/// Rules added, removed and changed, by name.
pub(crate) fn diff(old: &Policy, new: &Policy) -> (Vec<String>, Vec<String>, Vec<String>) {
    let find = |p: &Policy, name: &str| p.rules.iter().find(|r| r.name == name).cloned();
    let added = new
        .rules
        .iter()
        .filter(|r| find(old, &r.name).is_none())
        .map(|r| r.name.clone())
        .collect();
    let removed = old
        .rules
        .iter()
        .filter(|r| find(new, &r.name).is_none())
        .map(|r| r.name.clone())
        .collect();
    let mut changed: Vec<String> = old
        .rules
        .iter()
        .filter(|r| find(new, &r.name).is_some_and(|n| n != **r))
        .map(|r| r.name.clone())
        .collect();
    if old.default != new.default {
        changed.push("(default)".into());
    }
    (added, removed, changed)
}

fn audit_event(decision: &str, reason: String, detail: Value) -> AuditEvent {
    AuditEvent {
        ts_ms: crate::home::now_ms().max(0) as u64,
        kind: "policy".into(),
        agent: None,
        method: None,
        host: None,
        path: None,
        rules: vec![],
        decision: decision.into(),
        reason,
        secrets: vec![],
        status: None,
        bytes_in: 0,
        bytes_out: 0,
        latency_us: 0,
        detail: Some(detail),
    }
}

impl Reloader {
    pub fn new(
        config: Config,
        state: Arc<GatewayState>,
        hub: Option<airlock_approvals::Hub>,
        audit: AuditHandle,
        store: Store,
    ) -> Reloader {
        let sha = file_sha256(&config);
        Reloader {
            path: config.path.clone(),
            state,
            hub,
            audit,
            store,
            current: Mutex::new((config, sha)),
        }
    }

    /// Records in the store which policy this replica runs (its lease row; replicas only
    /// register one when approvals are configured).
    pub async fn record_hash(&self) {
        let sha = self.current.lock().await.1.clone();
        self.record(&sha).await;
    }

    async fn record(&self, sha: &str) {
        let Some(hub) = &self.hub else { return };
        if let Err(e) = self.store.set_replica_policy(hub.replica_id(), sha).await {
            tracing::warn!(error = %e, "could not record this replica's policy in the store");
        }
    }

    /// Another replica reloaded: load this replica's own file again when it changed (each
    /// replica reads its own copy; an unchanged file is left alone, and this reload is not
    /// announced again).
    pub async fn follow(&self) {
        let changed = match std::fs::read(&self.path) {
            Ok(b) => sha256_hex(&b) != self.current.lock().await.1,
            Err(_) => true, // reload() reports the failure
        };
        if !changed {
            return;
        }
        match self.reload("another replica (store notification)", false).await {
            Ok(r) => eprintln!(
                "airlock: policy reloaded after another replica's reload ({} added, {} removed, {} changed)",
                r.added.len(),
                r.removed.len(),
                r.changed.len()
            ),
            Err(e) => eprintln!("airlock: policy reload after another replica's refused: {e}"),
        }
    }

    /// Loads the file again and swaps the policy in, or refuses and changes nothing. `by`
    /// names who asked ("signal SIGHUP", "control plane"), for the audit record. `announce`:
    /// tell the replicas sharing the store to load their files too.
    pub async fn reload(&self, by: &str, announce: bool) -> Result<Reloaded, String> {
        let mut current = self.current.lock().await;
        let refuse = |why: String, sha_after: &str, cur: &str| {
            self.state.metrics.inc_reload(false);
            let _ = self.audit.append(audit_event(
                "refused",
                format!("policy reload by {by} refused: {why}"),
                json!({ "by": by, "sha256_before": cur, "sha256_after": sha_after }),
            ));
            tracing::warn!(by, "policy reload refused: {why}");
            why
        };
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                return Err(refuse(
                    format!("cannot read {}: {e}", self.path.display()),
                    "",
                    &current.1,
                ));
            }
        };
        let sha = sha256_hex(&bytes);
        // The bytes just hashed, not the file read again: the SHA-256 names what is loaded.
        let loaded = match std::str::from_utf8(&bytes) {
            Ok(src) => Config::load_source(src, &self.path),
            Err(e) => Err(airlock_config::ConfigError::Read {
                path: self.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
        };
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                return Err(refuse(
                    format!("{e}; the policy in force is unchanged"),
                    &sha,
                    &current.1,
                ));
            }
        };
        let restart = needs_restart(&current.0, &new);
        if !restart.is_empty() {
            let why = format!(
                "{} changed, which a running gateway cannot take: restart airlock for that (the policy in force is unchanged)",
                restart.join(", ")
            );
            return Err(refuse(why, &sha, &current.1));
        }
        let (added, removed, changed) = diff(&current.0.policy, &new.policy);
        let summary = format!(
            "policy reloaded by {by}: {} added, {} removed, {} changed",
            added.len(),
            removed.len(),
            changed.len()
        );
        let detail = json!({
            "by": by, "sha256_before": current.1, "sha256_after": sha,
            "added": added, "removed": removed, "changed": changed,
        });
        // Committed before the swap: a reload the audit log does not show did not happen.
        if let Err(e) = self
            .audit
            .append_durable(audit_event("reloaded", summary.clone(), detail))
            .await
        {
            return Err(refuse(
                format!("its audit record could not be committed ({e}); the policy in force is unchanged"),
                &sha,
                &current.1,
            ));
        }
        self.state.set_policy(new.policy.clone());
        self.state.metrics.inc_reload(true);
        // Holds whose every rule is gone or now denies are refused (each closing is audited).
        let holds = |name: &str| {
            new.policy
                .rules
                .iter()
                .any(|r| r.name == name && r.action != Action::Deny)
        };
        let refused = match &self.hub {
            Some(h) => h.recheck(holds).await,
            None => Vec::new(),
        };
        let out = Reloaded {
            sha256_before: current.1.clone(),
            sha256_after: sha.clone(),
            added,
            removed,
            changed,
            refused,
        };
        tracing::info!(by, sha256 = %sha, "{summary}");
        *current = (new, sha);
        drop(current);
        self.record(&out.sha256_after).await;
        if announce && let Err(e) = self.store.notify(airlock_store::POLICY).await {
            tracing::warn!(error = %e, "the other replicas were not told of this reload; reload them too");
        }
        Ok(out)
    }
}

impl airlock_web::PolicyReload for Reloader {
    fn reload<'a>(&'a self, by: &'a str) -> airlock_web::BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            Reloader::reload(self, by, true)
                .await
                .map(|r| serde_json::to_value(r).unwrap_or_default())
        })
    }

    fn config_sha256(&self) -> airlock_web::BoxFuture<'_, String> {
        Box::pin(async move { self.current.lock().await.1.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Config {
        Config::parse(src, std::path::Path::new("airlock.toml")).expect("valid")
    }

    #[test]
    fn database_changes_need_a_restart_and_http_rules_do_not() {
        let db = "[gateway]\npostgres_listen = \"127.0.0.1:5433\"\n\n[databases.prod]\nkind = \"postgres\"\nupstream = \"127.0.0.1:5432\"\ndatabase = \"app\"\nuser = \"app\"\npassword = \"vault:prod-db\"\ntls = \"disable\"\n\n[[agents]]\nname = \"a\"\ndatabases = [\"prod\"]\n\n[[rules]]\nname = \"reads\"\ndatabases = [\"prod\"]\nsql = [\"read\"]\naction = \"allow\"\n";
        let old = parse(db);
        let http = parse(&format!(
            "{db}\n[[rules]]\nname = \"web\"\nhosts = [\"example.com\"]\naction = \"allow\"\n"
        ));
        assert!(needs_restart(&old, &http).is_empty());
        let rules = parse(&db.replace("sql = [\"read\"]", "sql = [\"read\", \"write\"]"));
        assert_eq!(
            needs_restart(&old, &rules),
            vec!["database rules (rules with databases = [...])"]
        );
        let moved = parse(&db.replace("upstream = \"127.0.0.1:5432\"", "upstream = \"127.0.0.1:5434\""));
        assert_eq!(needs_restart(&old, &moved), vec!["[databases]"]);
    }
}
