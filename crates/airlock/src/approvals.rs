//! Wiring for approvals: people and channels from the config, channel credentials resolved
//! from the environment or the vault (never the file), and the hub started on the store.

use std::sync::Arc;

use airlock_approvals::{Hub, HubConfig};
use airlock_channels::{Channel, Person, discord, mattermost, ntfy, slack, telegram, webex, webhook};
use airlock_config::{Config, SecretRef};
use airlock_store::{AuditHandle, Store};
use airlock_vault::{SecretBytes, Vault};
use anyhow::{Context, bail};

use crate::home::sealed;

/// Reads a channel credential. Errors name the reference, never a value.
pub(crate) async fn resolve(r: &SecretRef, what: &str, store: &Store, vault: &Vault) -> anyhow::Result<SecretBytes> {
    match r {
        SecretRef::Env(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(SecretBytes::new(v.into_bytes())),
            _ => bail!("{what}: environment variable {name} is not set"),
        },
        SecretRef::Vault(name) => {
            let row = store
                .get_secret(name)
                .await?
                .with_context(|| format!("{what}: no secret {name:?} in the vault (airlock secret set {name})"))?;
            vault
                .open(&sealed(&row))
                .with_context(|| format!("{what}: cannot unseal secret {name:?}"))
        }
    }
}

async fn resolve_opt(
    r: &Option<SecretRef>,
    what: &str,
    store: &Store,
    vault: &Vault,
) -> anyhow::Result<Option<SecretBytes>> {
    match r {
        Some(r) => Ok(Some(resolve(r, what, store, vault).await?)),
        None => Ok(None),
    }
}

/// The configured channels, in the order the routing names them (default: all).
pub async fn channels(cfg: &Config, store: &Store, vault: &Vault) -> anyhow::Result<Vec<Arc<dyn Channel>>> {
    let c = &cfg.channels;
    let wanted = |name: &str| {
        cfg.approvals
            .channels
            .as_ref()
            .is_none_or(|v| v.iter().any(|n| n == name))
    };
    let mut out: Vec<Arc<dyn Channel>> = Vec::new();
    if let Some(s) = &c.slack
        && wanted("slack")
    {
        out.push(Arc::new(slack::Slack::new(slack::SlackConfig {
            api_base: s.api_url.clone().unwrap_or_else(|| slack::DEFAULT_API_BASE.to_string()),
            bot_token: resolve(&s.bot_token, "channels.slack.bot_token", store, vault).await?,
            app_token: resolve_opt(&s.app_token, "channels.slack.app_token", store, vault).await?,
            signing_secret: resolve_opt(&s.signing_secret, "channels.slack.signing_secret", store, vault).await?,
        })));
    }
    if let Some(t) = &c.telegram
        && wanted("telegram")
    {
        out.push(Arc::new(telegram::Telegram::new(telegram::TelegramConfig {
            api_base: t
                .api_url
                .clone()
                .unwrap_or_else(|| telegram::TelegramConfig::DEFAULT_API_BASE.to_string()),
            bot_token: resolve(&t.bot_token, "channels.telegram.bot_token", store, vault).await?,
            webhook_secret: resolve_opt(&t.webhook_secret, "channels.telegram.webhook_secret", store, vault).await?,
        })));
    }
    if let Some(d) = &c.discord
        && wanted("discord")
    {
        let public_key = match &d.public_key {
            Some(k) => Some(
                discord::PublicKey::from_hex(k)
                    .context("channels.discord.public_key: not a valid Ed25519 public key")?,
            ),
            None => None,
        };
        out.push(Arc::new(discord::Discord::new(discord::DiscordConfig {
            api_base: d
                .api_url
                .clone()
                .unwrap_or_else(|| discord::DEFAULT_API_BASE.to_string()),
            bot_token: resolve(&d.bot_token, "channels.discord.bot_token", store, vault).await?,
            gateway: d.gateway,
            public_key,
        })));
    }
    if let Some(w) = &c.webex
        && wanted("webex")
    {
        out.push(Arc::new(webex::Webex::new(webex::WebexConfig {
            api_base: w.api_url.clone().unwrap_or_else(|| webex::DEFAULT_API_BASE.to_string()),
            bot_token: resolve(&w.bot_token, "channels.webex.bot_token", store, vault).await?,
            webhook_secret: resolve(&w.webhook_secret, "channels.webex.webhook_secret", store, vault).await?,
        })));
    }
    if let Some(w) = &c.webhook
        && wanted("webhook")
    {
        let raw = resolve(&w.secret, "channels.webhook.secret", store, vault).await?;
        let text = std::str::from_utf8(raw.expose()).context("channels.webhook.secret: not UTF-8")?;
        let secret = webhook::parse_secret(text).map_err(|e| anyhow::anyhow!("channels.webhook.secret: {e}"))?;
        out.push(Arc::new(webhook::Webhook::new(webhook::WebhookConfig {
            url: w.url.clone(),
            secret,
        })));
    }
    if let Some(n) = &c.ntfy
        && wanted("ntfy")
    {
        out.push(Arc::new(ntfy::Ntfy::new(ntfy::NtfyConfig {
            server: n.server.clone().unwrap_or_else(|| ntfy::DEFAULT_SERVER.to_string()),
            token: resolve_opt(&n.token, "channels.ntfy.token", store, vault).await?,
            public_url: n.public_url.clone(),
            priority: n.priority,
        })));
    }
    if let Some(m) = &c.mattermost
        && wanted("mattermost")
    {
        out.push(Arc::new(mattermost::Mattermost::new(mattermost::MattermostConfig {
            url: m.url.clone(),
            bot_token: resolve(&m.bot_token, "channels.mattermost.bot_token", store, vault).await?,
            callback_secret: resolve(&m.callback_secret, "channels.mattermost.callback_secret", store, vault).await?,
            public_url: m.public_url.clone(),
        })));
    }
    Ok(out)
}

/// Starts the hub when people are configured; `None` otherwise (approve rules then deny).
pub async fn start(cfg: &Config, store: &Store, vault: &Vault, audit: &AuditHandle) -> anyhow::Result<Option<Hub>> {
    if cfg.people.is_empty() {
        return Ok(None);
    }
    let people = cfg
        .people
        .iter()
        .map(|p| Person {
            name: p.name.clone(),
            roles: p.roles.clone(),
            ids: p.ids.clone(),
        })
        .collect();
    let token_key = crate::home::button_key(store, vault).await?;
    let hub = Hub::start(
        HubConfig {
            people,
            channels: channels(cfg, store, vault).await?,
            token_key: token_key.expose().to_vec(),
            lease: std::time::Duration::from_secs(cfg.store.lease_secs),
        },
        store.clone(),
        audit.clone(),
    )
    .await
    .context("cannot start approvals")?;
    Ok(Some(hub))
}
