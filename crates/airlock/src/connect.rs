//! `airlock connect NAME`: the OAuth2 authorization-code flow with PKCE for a `kind = "oauth2"`
//! secret. Prints the URL to open; the provider redirects the browser to the control listener's
//! `/oauth/callback` (which stores the code for this flow's `state`), or the operator pastes the
//! code (or the whole redirect URL) here. The code is exchanged with the verifier only this
//! process holds, and the refresh token and first access token are sealed into the vault.

use std::path::Path;
use std::time::Duration;

use airlock_config::{Config, CredentialKind, OAuth2};
use airlock_credentials::{access_row_name, access_value, oauth2, pkce, refresh_at};
use anyhow::{Context, bail};

use crate::home::{Home, now_ms, row, sealed};

/// How long a started flow waits for consent.
const FLOW: Duration = Duration::from_secs(600);

/// Where the provider sends the browser back: the configured URI, or the control listener.
fn redirect_uri(cfg: &Config, o: &OAuth2) -> String {
    if let Some(r) = &o.redirect_uri {
        return r.clone();
    }
    let mut addr = cfg.gateway.control;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}/oauth/callback")
}

/// The code from a pasted line: the code itself, or the redirect URL carrying it (whose
/// `state` must be this flow's).
fn pasted_code(line: &str, state: &str) -> anyhow::Result<Option<String>> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let Ok(url) = url::Url::parse(line) else {
        return Ok(Some(line.to_string()));
    };
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    if q.get("state").map(String::as_str) != Some(state) {
        bail!("the pasted URL's state is not this flow's: run airlock connect again");
    }
    if let Some(e) = q.get("error") {
        bail!(
            "the provider refused consent ({})",
            e.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(64)
                .collect::<String>()
        );
    }
    Ok(q.get("code").cloned())
}

pub async fn connect(cfg_path: &Path, name: &str) -> anyhow::Result<()> {
    let home = Home::load(cfg_path)?;
    let cfg = &home.config;
    let Some(cred) = cfg.credential(name) else {
        bail!("secret \"{name}\" is not an OAuth2 connection: declare [secrets.{name}] kind = \"oauth2\"");
    };
    let CredentialKind::OAuth2(o) = &cred.kind else {
        bail!(
            "secret \"{name}\" is not an OAuth2 connection (a github_app needs no consent: seal its key with airlock secret set {name})"
        );
    };
    let opened = home.open().await?;
    let (store, vault) = (&opened.store, &opened.vault);
    let client_secret = match &o.client_secret {
        None => None,
        Some(r) => Some(crate::approvals::resolve(r, &format!("secrets.{name}.client_secret"), store, vault).await?),
    };
    let verifier = pkce::verifier();
    let state = pkce::state();
    let redirect = redirect_uri(cfg, o);
    let started = now_ms();
    store
        .oauth_begin(&state, name, started + FLOW.as_millis() as i64)
        .await?;
    let url = oauth2::authorize_url(o, &redirect, &state, &pkce::challenge(&verifier));
    println!("Open this URL in a browser and consent:\n{url}");
    println!("Waiting for the redirect to {redirect} (or paste the code or the redirect URL here)…");

    // Pasted lines, read on a thread of their own (stdin blocks); it ends with stdin.
    let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let deadline = tokio::time::Instant::now() + FLOW;
    let code = loop {
        if tokio::time::Instant::now() > deadline {
            store.oauth_finish(&state, now_ms()).await?;
            bail!(
                "no consent within {} minutes: run airlock connect {name} again",
                FLOW.as_secs() / 60
            );
        }
        if let Some(p) = store.oauth_poll(&state).await? {
            if let Some(e) = p.error {
                store.oauth_finish(&state, now_ms()).await?;
                bail!("the provider refused consent ({e})");
            }
            if let Some(c) = p.code {
                break c;
            }
        }
        if stdin_open {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(l) => if let Some(c) = pasted_code(&l, &state)? { break c },
                    None => stdin_open = false,
                },
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        } else {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    store.oauth_finish(&state, now_ms()).await?;
    let http = oauth2::client();
    let grant = oauth2::exchange_code(&http, o, client_secret.as_ref(), &code, &verifier, &redirect)
        .await
        .with_context(|| format!("connection {name}: the code exchange failed"))?;
    let now = now_ms();
    let mut rows = Vec::new();
    match &grant.refresh {
        Some(rt) => {
            let version = store.get_secret(name).await?.map_or(1, |r| r.version + 1);
            rows.push(row(&vault.seal(name, u32::try_from(version)?, rt), now));
        }
        None if grant.expires_in.is_some() => eprintln!(
            "warning: the provider granted no refresh token, so this connection ends when its access token \
             expires (Google: access_type=offline; Microsoft: the offline_access scope)"
        ),
        None => {}
    }
    let access = access_row_name(name);
    let version = store.get_secret(&access).await?.map_or(1, |r| r.version + 1);
    let value = access_value(&grant.access, refresh_at(now, grant.expires_in));
    rows.push(row(&vault.seal(&access, u32::try_from(version)?, &value), now));
    for r in &rows {
        // Check it opens before it is relied on.
        vault.open(&sealed(r)).context("sealing failed")?;
        store.put_secret(r).await?;
    }
    store.credential_set_status(name, "", now).await?;
    let _ = store.notify(airlock_store::IDENTITIES).await;
    println!("connected \"{name}\"");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_redirect_url_must_carry_this_flows_state() {
        assert_eq!(pasted_code("  abc \n", "s").unwrap().as_deref(), Some("abc"));
        let ok = "http://127.0.0.1:9/oauth/callback?code=xyz&state=s";
        assert_eq!(pasted_code(ok, "s").unwrap().as_deref(), Some("xyz"));
        let other = "http://127.0.0.1:9/oauth/callback?code=xyz&state=t";
        assert!(pasted_code(other, "s").is_err());
        assert!(pasted_code("http://h/cb?error=access_denied&state=s", "s").is_err());
    }
}
