//! Wiring of the OneCLI-compatible API (`[compat.onecli]`): the key agents' credentials are
//! derived from (sealed in the vault like the buttons' key), the grants from `[[agents]]`, and
//! the gateway's reload of its agents, run at once after one is created.

use std::sync::Arc;

use airlock_config::Config;
use airlock_store::Store;
use airlock_vault::Vault;
use airlock_web::onecli::OneCli;

use crate::home::{AGENT_KEY, now_ms, row, sealed};

/// The key of agents created through the API (32 random bytes, made at first use).
async fn agent_key(store: &Store, vault: &Vault) -> anyhow::Result<airlock_vault::SecretBytes> {
    if let Some(r) = store.get_secret(AGENT_KEY).await? {
        return vault
            .open(&sealed(&r))
            .map_err(|e| anyhow::anyhow!("cannot open the OneCLI agents' key: {e}"));
    }
    let key: [u8; 32] = rand::random();
    let key = airlock_vault::SecretBytes::new(key.to_vec());
    store
        .put_secret(&row(&vault.seal(AGENT_KEY, 1, &key), now_ms()))
        .await?;
    Ok(key)
}

pub async fn api(
    cfg: &Config,
    store: &Store,
    vault: &Arc<Vault>,
    ca_pem: String,
    refresh: airlock_web::Refresh,
) -> anyhow::Result<Option<Arc<OneCli>>> {
    let Some(c) = &cfg.onecli else {
        return Ok(None);
    };
    let agent_key = agent_key(store, vault).await?;
    let grants_cfg = cfg.clone();
    let grants = Arc::new(move |name: &str| {
        let a = grants_cfg.agent(name)?;
        Some(
            a.secrets
                .iter()
                .filter_map(|s| {
                    let d = grants_cfg.secrets.get(s)?;
                    Some((d.env.clone()?, d.placeholder.clone()))
                })
                .collect(),
        )
    });
    Ok(Some(Arc::new(OneCli {
        proxy_url: c.proxy_url.clone(),
        approver: c.approver.clone(),
        ca_pem,
        agent_key,
        grants,
        refresh,
    })))
}
