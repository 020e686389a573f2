//! `airlock apikey add|list|rm`: scoped API keys for the OneCLI-compatible API. A key is shown
//! once; the store keeps its SHA-256 only. Removing it refuses it at once, also while serving.

use std::path::Path;

use airlock_store::{ApiKeyRow, StoreError};
use airlock_web::onecli::Scope;
use anyhow::bail;

use crate::home::{Home, now_ms, random_token};

/// `alk_` marks an airlock API key (a secret scanner can match it).
const PREFIX: &str = "alk_";

fn scopes(list: &str) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(scope) = Scope::parse(s) else {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            bail!("unknown scope {s:?}: use {}", known.join(", "));
        };
        if !out.iter().any(|x| x == scope.as_str()) {
            out.push(scope.as_str().to_string());
        }
    }
    if out.is_empty() {
        bail!("name at least one scope: --scope provision,approvals");
    }
    Ok(out)
}

pub async fn add(cfg: &Path, name: &str, scope: &str) -> anyhow::Result<()> {
    if !(1..=64).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        bail!("an API key name is 1 to 64 of A-Z a-z 0-9 . _ -");
    }
    let scopes = scopes(scope)?;
    let opened = Home::load(cfg)?.open().await?;
    let key = format!("{PREFIX}{}", random_token());
    let row = ApiKeyRow {
        name: name.to_string(),
        key_hash: airlock_gateway::token_hash(&key).to_vec(),
        scopes: scopes.clone(),
        created_ms: now_ms(),
    };
    match opened.store.add_api_key(&row).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists { .. }) => {
            bail!("an API key named \"{name}\" exists (remove it first with: airlock apikey rm {name})")
        }
        Err(e) => return Err(e.into()),
    }
    eprintln!(
        "API key \"{name}\" added (scopes: {}); it is shown once, below. Give it as ONECLI_API_KEY:",
        scopes.join(",")
    );
    println!("{key}");
    Ok(())
}

pub async fn list(cfg: &Path) -> anyhow::Result<()> {
    let opened = Home::load(cfg)?.open().await?;
    for k in opened.store.list_api_keys().await? {
        println!(
            "{}\tscopes: {}\tcreated_ms: {}",
            k.name,
            k.scopes.join(","),
            k.created_ms
        );
    }
    Ok(())
}

pub async fn rm(cfg: &Path, name: &str) -> anyhow::Result<()> {
    let opened = Home::load(cfg)?.open().await?;
    if !opened.store.remove_api_key(name).await? {
        bail!("no API key \"{name}\"");
    }
    println!("removed API key \"{name}\"; it no longer works");
    Ok(())
}
