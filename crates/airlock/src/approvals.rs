//! Wiring for approvals: people and channels from the config, channel credentials resolved
//! from the environment or the vault (never the file), and the hub started on the store.

use std::sync::Arc;

use airlock_approvals::{Hub, HubConfig};
use airlock_channels::memory::Memory;
use airlock_channels::{
    BoxFuture, Channel, Person, discord, email, gchat, matrix, mattermost, ntfy, signal, slack, teams, telegram, webex,
    webhook, whatsapp,
};
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
    let memory: Arc<dyn Memory> = Arc::new(crate::memory::StoreMemory(store.clone()));
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
            memory: memory.clone(),
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
    if let Some(t) = &c.teams
        && wanted("teams")
    {
        out.push(Arc::new(teams_channel(cfg, t, store, vault).await?));
    }
    if let Some(g) = &c.gchat
        && wanted("gchat")
    {
        let key = resolve(
            &g.service_account_key,
            "channels.gchat.service_account_key",
            store,
            vault,
        )
        .await?;
        let service_account = gchat::api::ServiceAccount::from_json(&key)
            .map_err(|e| anyhow::anyhow!("channels.gchat.service_account_key: {e}"))?;
        out.push(Arc::new(gchat::Gchat::new(gchat::GchatConfig {
            api_base: g.api_url.clone().unwrap_or_else(|| gchat::DEFAULT_API_BASE.to_string()),
            service_account,
            token_url: g.token_url.clone(),
            audience: g.audience.as_deref().map(gchat::verify::Audience::parse),
            subscription: g.subscription.clone(),
            pubsub_base: g
                .pubsub_url
                .clone()
                .unwrap_or_else(|| gchat::DEFAULT_PUBSUB_BASE.to_string()),
            jwks_url: g.jwks_url.clone(),
            refetch_after: airlock_channels::jwks::REFETCH_AFTER,
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
    if let Some(e) = &c.email
        && wanted("email")
    {
        out.push(Arc::new(email_channel(cfg, e, store, vault).await?));
    }
    if let Some(w) = &c.whatsapp
        && wanted("whatsapp")
    {
        out.push(Arc::new(whatsapp::WhatsApp::new(whatsapp::WhatsAppConfig {
            api_base: w
                .api_url
                .clone()
                .unwrap_or_else(|| whatsapp::DEFAULT_API_BASE.to_string()),
            phone_number_id: w.phone_number_id.clone(),
            access_token: resolve(&w.access_token, "channels.whatsapp.access_token", store, vault).await?,
            app_secret: resolve(&w.app_secret, "channels.whatsapp.app_secret", store, vault).await?,
            verify_token: resolve(&w.verify_token, "channels.whatsapp.verify_token", store, vault).await?,
            public_url: w.public_url.clone(),
            template: w.template.clone().map(|name| whatsapp::Template {
                name,
                language: w.template_language.clone(),
            }),
            memory: memory.clone(),
        })));
    }
    if let Some(m) = &c.matrix
        && wanted("matrix")
    {
        out.push(Arc::new(matrix::Matrix::new(matrix::MatrixConfig {
            homeserver: m.homeserver.clone(),
            access_token: resolve(&m.access_token, "channels.matrix.access_token", store, vault).await?,
            memory: memory.clone(),
            poll_timeout: std::time::Duration::from_secs(30),
        })));
    }
    if let Some(s) = &c.signal
        && wanted("signal")
    {
        out.push(Arc::new(signal::Signal::new(signal::SignalConfig {
            url: s.url.clone().unwrap_or_else(|| signal::DEFAULT_URL.to_string()),
            account: s.account.clone(),
            memory,
        })));
    }
    Ok(out)
}

async fn email_channel(
    cfg: &Config,
    e: &airlock_config::EmailConfig,
    store: &Store,
    vault: &Vault,
) -> anyhow::Result<email::Email> {
    let ca_pem = match &e.ca {
        Some(p) => {
            let path = cfg.dir.join(p);
            Some(std::fs::read(&path).with_context(|| format!("channels.email.ca: cannot read {}", path.display()))?)
        }
        None => None,
    };
    let smtp = email::Smtp {
        host: e.host.clone(),
        port: e.port,
        security: match e.security {
            airlock_config::SmtpSecurity::Tls => email::Security::Tls,
            airlock_config::SmtpSecurity::StartTls => email::Security::StartTls,
            airlock_config::SmtpSecurity::None => email::Security::None,
        },
        username: e.username.clone(),
        password: resolve_opt(&e.password, "channels.email.password", store, vault).await?,
        ca_pem,
    };
    email::Email::new(email::EmailConfig {
        smtp,
        from: e.from.clone(),
        base_url: e.base_url.clone(),
    })
    .map_err(|err| anyhow::anyhow!("{err}"))
}

/// Teams conversations, kept in the store's meta table so every replica can send cards to
/// people who wrote to the bot through any of them.
struct StoredConversations(Store);

fn conversation_key(user: &str) -> String {
    format!("teams.conversation.{user}")
}

impl teams::Conversations for StoredConversations {
    fn get<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let v = self
                .0
                .get_meta(&conversation_key(user))
                .await
                .map_err(|e| e.to_string())?;
            Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned()))
        })
    }

    fn put<'a>(&'a self, user: &'a str, reference: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0
                .set_meta(&conversation_key(user), reference.as_bytes())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The Teams channel; says who cannot get cards yet because they never wrote to the bot.
async fn teams_channel(
    cfg: &Config,
    t: &airlock_config::TeamsConfig,
    store: &Store,
    vault: &Vault,
) -> anyhow::Result<teams::Teams> {
    let ch = teams::Teams::new(teams::TeamsConfig {
        app_id: t.app_id.clone(),
        app_password: resolve(&t.app_password, "channels.teams.app_password", store, vault).await?,
        tenant_id: t.tenant_id.clone(),
        token_url: t
            .token_url
            .clone()
            .unwrap_or_else(|| teams::default_token_url(t.tenant_id.as_deref())),
        openid_url: t
            .openid_url
            .clone()
            .unwrap_or_else(|| teams::DEFAULT_OPENID_URL.to_string()),
        refetch_after: airlock_channels::jwks::REFETCH_AFTER,
        conversations: Arc::new(StoredConversations(store.clone())),
    });
    let people: Vec<(&str, String)> = cfg
        .people
        .iter()
        .filter_map(|p| p.ids.get("teams").map(|id| (p.name.as_str(), id.clone())))
        .collect();
    let ids: Vec<String> = people.iter().map(|(_, id)| id.clone()).collect();
    let missing = ch.unreachable(&ids).await;
    for (name, id) in people.iter().filter(|(_, id)| missing.contains(id)) {
        tracing::warn!(
            person = %name,
            teams = %id,
            "{name} has not written to the airlock bot in Teams yet: their approval cards cannot be \
             delivered until they install the app or send the bot a message"
        );
    }
    Ok(ch)
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
