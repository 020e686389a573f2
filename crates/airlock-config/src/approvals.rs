//! `[people.*]`, `[channels.*]` and `[approvals]`: who may decide, where cards go, and the
//! limits of holding. Channel credentials are references (`env:NAME` or `vault:NAME`),
//! never values: secrets do not live in the file.

use std::collections::BTreeMap;

use toml::Table;

use crate::error::{Errors, KeyPath};
use crate::raw::{Fields, as_table, valid_name};

/// A person who may approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonConfig {
    pub name: String,
    pub roles: Vec<String>,
    /// Channel name → the person's id there (`slack = "U012…"`, `telegram = "1234"`, …).
    pub ids: BTreeMap<String, String>,
}

/// Where a channel credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the gateway process.
    Env(String),
    /// A secret sealed in the vault (`airlock secret set NAME`).
    Vault(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackConfig {
    pub bot_token: SecretRef,
    /// Socket Mode (the default when set): no public URL needed.
    pub app_token: Option<SecretRef>,
    /// HTTP interactivity (`/callbacks/slack` on the control listener).
    pub signing_secret: Option<SecretRef>,
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramConfig {
    pub bot_token: SecretRef,
    /// Webhook mode with `X-Telegram-Bot-Api-Secret-Token`; without it, getUpdates polling.
    pub webhook_secret: Option<SecretRef>,
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordConfig {
    pub bot_token: SecretRef,
    /// Clicks over the Gateway WebSocket (default true): no public URL needed.
    pub gateway: bool,
    /// The application's public key (64 hex digits, not a secret): HTTP interactions on
    /// `/callbacks/discord`, verified with Ed25519.
    pub public_key: Option<String>,
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebexConfig {
    pub bot_token: SecretRef,
    /// The secret of the `attachmentActions` webhook (`/callbacks/webex`, X-Spark-Signature).
    pub webhook_secret: SecretRef,
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    /// `whsec_…` (Standard Webhooks).
    pub secret: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelsConfig {
    pub slack: Option<SlackConfig>,
    pub telegram: Option<TelegramConfig>,
    pub webhook: Option<WebhookConfig>,
    pub ntfy: Option<crate::selfhosted::NtfyConfig>,
    pub mattermost: Option<crate::selfhosted::MattermostConfig>,
    pub discord: Option<DiscordConfig>,
    pub webex: Option<WebexConfig>,
    pub email: Option<crate::selfhosted::EmailConfig>,
    pub teams: Option<crate::cloud::TeamsConfig>,
    pub gchat: Option<crate::cloud::GchatConfig>,
    pub whatsapp: Option<crate::messengers::WhatsAppConfig>,
    pub matrix: Option<crate::messengers::MatrixConfig>,
    pub signal: Option<crate::messengers::SignalConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// Largest body held for approval; larger requests are denied, never approved blind.
    pub max_body: usize,
    /// Channels cards go to (default: every configured one). The dashboard and the
    /// terminal always work.
    pub channels: Option<Vec<String>>,
    /// How many requests one agent may have held at once (per gateway process); beyond it,
    /// 429. Each held request keeps a connection, a task and its body.
    pub max_held_per_agent: usize,
}

/// The default `[approvals] max_held_per_agent`.
pub const DEFAULT_MAX_HELD_PER_AGENT: usize = 100;
/// Upper bound of `max_held_per_agent`: more would make the cap meaningless.
const MAX_HELD_LIMIT: i64 = 10_000;

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            max_body: 1 << 20,
            channels: None,
            max_held_per_agent: DEFAULT_MAX_HELD_PER_AGENT,
        }
    }
}

const PERSON_KEYS: &[&str] = &[
    "roles",
    "slack",
    "telegram",
    "email",
    "webhook",
    "ntfy",
    "mattermost",
    "discord",
    "webex",
    "teams",
    "gchat",
    "whatsapp",
    "matrix",
    "signal",
];
const CHANNEL_KINDS: &[&str] = &[
    "slack",
    "telegram",
    "webhook",
    "ntfy",
    "mattermost",
    "discord",
    "webex",
    "email",
    "teams",
    "gchat",
    "whatsapp",
    "matrix",
    "signal",
];
/// Bodies larger than this cannot be held (memory per held request is bounded).
const MAX_BODY_LIMIT: i64 = 64 << 20;

pub(crate) fn secret_ref(f: &Fields<'_>, key: &str, required: bool, errs: &mut Errors) -> Option<SecretRef> {
    let Some(s) = f.str(key, errs) else {
        if required && !f.has(key) {
            errs.push(
                &f.at(key),
                format!("required: where to read it, e.g. \"env:{}\"", key.to_uppercase()),
            );
        }
        return None;
    };
    let (kind, name) = s.split_once(':').unwrap_or(("", s));
    let ok_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    match (kind, ok_name) {
        ("env", true) => Some(SecretRef::Env(name.to_string())),
        ("vault", true) => Some(SecretRef::Vault(name.to_string())),
        _ => {
            // Never echo the value: it may be the secret itself, pasted by mistake.
            errs.push(
                &f.at(key),
                "must be \"env:NAME\" or \"vault:NAME\" — credentials are never written in the file",
            );
            None
        }
    }
}

/// A channel endpoint: https, or plain http only toward this machine. Bot tokens travel in
/// the URL or headers of every call, and cards carry the request and signed buttons, so a
/// clear-text hop anywhere else would hand them to whoever is on the path.
pub(crate) fn channel_url(f: &Fields<'_>, key: &str, errs: &mut Errors) -> Option<String> {
    let s = f.str(key, errs)?;
    // The parser reqwest uses, so the host checked is the host dialed (`http://127.0.0.1@evil`
    // and `http://evil\@127.0.0.1` both name evil).
    let parsed = match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => u,
        _ => {
            errs.push(&f.at(key), "must be an https:// URL (http:// only toward loopback)");
            return None;
        }
    };
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        errs.push(
            &f.at(key),
            format!(
                "http:// sends the channel's credentials and cards in clear text: use https://, \
                 or http:// only toward loopback (127.0.0.0/8, [::1], localhost); host here: {}",
                parsed.host_str().unwrap_or_default()
            ),
        );
        return None;
    }
    Some(s.to_string())
}

/// Discord ids are snowflakes: unsigned 64-bit integers written in decimal.
fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        None => false,
    }
}

pub(crate) fn read_people(t: Option<&Table>, errs: &mut Errors) -> Vec<PersonConfig> {
    let mut out = Vec::new();
    for (name, v) in t.into_iter().flatten() {
        let path = KeyPath::root().key("people").key(name);
        if !valid_name(name) {
            errs.push(&path, "a name is 1 to 64 of A-Z a-z 0-9 . _ -");
        }
        let Some(t) = as_table(v, &path, errs) else { continue };
        let f = Fields::new(t, path, PERSON_KEYS, errs);
        let roles: Vec<String> = f.strs("roles", errs).into_iter().map(|(_, s)| s.to_string()).collect();
        if roles.is_empty() {
            errs.push(
                &f.at("roles"),
                "a person needs at least one role, e.g. roles = [\"owner\"]",
            );
        }
        let mut ids = BTreeMap::new();
        for &key in &PERSON_KEYS[1..] {
            if let Some(id) = f.str(key, errs) {
                if id.trim().is_empty() || id.chars().any(char::is_control) {
                    errs.push(&f.at(key), "must be a non-empty single-line id");
                } else if key == "ntfy" && !crate::selfhosted::is_topic(id.trim()) {
                    errs.push(&f.at(key), "must be an ntfy topic name: 1-64 of A-Z a-z 0-9 _ -");
                } else if key == "discord" && !is_snowflake(id.trim()) {
                    errs.push(
                        &f.at(key),
                        "a Discord user id is a number (Developer Mode, then Copy User ID), not a user name",
                    );
                } else if key == "teams" && !crate::cloud::is_guid(id.trim()) {
                    errs.push(
                        &f.at(key),
                        "a Teams id is the person's Microsoft Entra object id (a GUID), not an email or a name",
                    );
                } else if key == "gchat" && !crate::cloud::is_gchat_user(id.trim()) {
                    errs.push(
                        &f.at(key),
                        "a Google Chat id is the user's resource name, users/ and a number (not an email)",
                    );
                } else if key == "signal" && !crate::messengers::is_e164(id.trim()) {
                    errs.push(
                        &f.at(key),
                        "a Signal id is the number in E.164 form, with the +: +15551234567",
                    );
                } else if key == "matrix" && !crate::messengers::is_matrix_user(id.trim()) {
                    errs.push(&f.at(key), "a Matrix id is a full user id: @alice:example.org");
                } else if key == "whatsapp" && !crate::messengers::is_wa_id(id.trim()) {
                    errs.push(
                        &f.at(key),
                        "a WhatsApp id is the number in international form, digits only (15551234567: no +, spaces or dashes)",
                    );
                } else {
                    let id = id.trim();
                    let id = if key == "teams" {
                        id.to_ascii_lowercase()
                    } else {
                        id.to_string()
                    };
                    ids.insert(key.to_string(), id);
                }
            }
        }
        out.push(PersonConfig {
            name: name.clone(),
            roles,
            ids,
        });
    }
    out
}

pub(crate) fn read_channels(t: Option<&Table>, errs: &mut Errors) -> ChannelsConfig {
    let mut c = ChannelsConfig::default();
    for (name, v) in t.into_iter().flatten() {
        let path = KeyPath::root().key("channels").key(name);
        let Some(t) = as_table(v, &path, errs) else { continue };
        match name.as_str() {
            "slack" => {
                let f = Fields::new(t, path, &["bot_token", "app_token", "signing_secret", "api_url"], errs);
                let bot_token = secret_ref(&f, "bot_token", true, errs);
                let app_token = secret_ref(&f, "app_token", false, errs);
                let signing_secret = secret_ref(&f, "signing_secret", false, errs);
                if !f.has("app_token") && !f.has("signing_secret") {
                    errs.push(
                        &f.path,
                        "Slack needs app_token (Socket Mode) or signing_secret (HTTP interactivity) to receive clicks",
                    );
                }
                let api_url = channel_url(&f, "api_url", errs).map(|u| u.trim_end_matches('/').to_string());
                c.slack = bot_token.map(|bot_token| SlackConfig {
                    bot_token,
                    app_token,
                    signing_secret,
                    api_url,
                });
            }
            "telegram" => {
                let f = Fields::new(t, path, &["bot_token", "webhook_secret", "api_url"], errs);
                let bot_token = secret_ref(&f, "bot_token", true, errs);
                let webhook_secret = secret_ref(&f, "webhook_secret", false, errs);
                let api_url = channel_url(&f, "api_url", errs).map(|u| u.trim_end_matches('/').to_string());
                c.telegram = bot_token.map(|bot_token| TelegramConfig {
                    bot_token,
                    webhook_secret,
                    api_url,
                });
            }
            "discord" => {
                let f = Fields::new(t, path, &["bot_token", "gateway", "public_key", "api_url"], errs);
                let bot_token = secret_ref(&f, "bot_token", true, errs);
                let gateway = f.bool("gateway", errs).unwrap_or(true);
                let public_key = f.str("public_key", errs).and_then(|k| {
                    let k = k.trim();
                    if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
                        Some(k.to_ascii_lowercase())
                    } else {
                        errs.push(
                            &f.at("public_key"),
                            "must be the application's public key: 64 hex digits (Developer Portal, General Information)",
                        );
                        None
                    }
                });
                if !gateway && !f.has("public_key") {
                    errs.push(
                        &f.path,
                        "Discord needs gateway = true (the default) or public_key (HTTP interactions) to receive clicks",
                    );
                }
                let api_url = channel_url(&f, "api_url", errs).map(|u| u.trim_end_matches('/').to_string());
                c.discord = bot_token.map(|bot_token| DiscordConfig {
                    bot_token,
                    gateway,
                    public_key,
                    api_url,
                });
            }
            "webex" => {
                let f = Fields::new(t, path, &["bot_token", "webhook_secret", "api_url"], errs);
                let bot_token = secret_ref(&f, "bot_token", true, errs);
                let webhook_secret = secret_ref(&f, "webhook_secret", true, errs);
                let api_url = channel_url(&f, "api_url", errs).map(|u| u.trim_end_matches('/').to_string());
                if let (Some(bot_token), Some(webhook_secret)) = (bot_token, webhook_secret) {
                    c.webex = Some(WebexConfig {
                        bot_token,
                        webhook_secret,
                        api_url,
                    });
                }
            }
            "webhook" => {
                let f = Fields::new(t, path, &["url", "secret"], errs);
                let url = channel_url(&f, "url", errs);
                if !f.has("url") {
                    errs.push(&f.at("url"), "required: where cards are POSTed");
                }
                let secret = secret_ref(&f, "secret", true, errs);
                if let (Some(url), Some(secret)) = (url, secret) {
                    c.webhook = Some(WebhookConfig { url, secret });
                }
            }
            "ntfy" => c.ntfy = crate::selfhosted::read_ntfy(t, path, errs),
            "mattermost" => c.mattermost = crate::selfhosted::read_mattermost(t, path, errs),
            "email" => c.email = crate::selfhosted::read_email(t, path, errs),
            "teams" => c.teams = crate::cloud::read_teams(t, path, errs),
            "gchat" => c.gchat = crate::cloud::read_gchat(t, path, errs),
            "whatsapp" => c.whatsapp = crate::messengers::read_whatsapp(t, path, errs),
            "matrix" => c.matrix = crate::messengers::read_matrix(t, path, errs),
            "signal" => c.signal = crate::messengers::read_signal(t, path, errs),
            other => errs.push(
                &path,
                format!(
                    "unknown channel {other:?} (expected one of: {})",
                    CHANNEL_KINDS.join(", ")
                ),
            ),
        }
    }
    c
}

/// An integer from 1 to `max` (`unit` says of what, for the message).
fn count(f: &Fields<'_>, key: &str, max: i64, unit: &str, errs: &mut Errors) -> Option<usize> {
    let n = f.int(key, errs)?;
    if (1..=max).contains(&n) {
        usize::try_from(n).ok()
    } else {
        errs.push(&f.at(key), format!("must be between 1 and {max} {unit}"));
        None
    }
}

pub(crate) fn read_approvals(t: Option<&Table>, channels: &ChannelsConfig, errs: &mut Errors) -> ApprovalsConfig {
    let mut a = ApprovalsConfig::default();
    let Some(t) = t else { return a };
    let f = Fields::new(
        t,
        KeyPath::root().key("approvals"),
        &["max_body", "channels", "max_held_per_agent"],
        errs,
    );
    if let Some(n) = count(&f, "max_body", MAX_BODY_LIMIT, "bytes", errs) {
        a.max_body = n;
    }
    if let Some(n) = count(&f, "max_held_per_agent", MAX_HELD_LIMIT, "requests", errs) {
        a.max_held_per_agent = n;
    }
    if f.has("channels") {
        let mut names = Vec::new();
        for (p, s) in f.strs("channels", errs) {
            let configured = match s {
                "slack" => channels.slack.is_some(),
                "telegram" => channels.telegram.is_some(),
                "webhook" => channels.webhook.is_some(),
                "ntfy" => channels.ntfy.is_some(),
                "mattermost" => channels.mattermost.is_some(),
                "discord" => channels.discord.is_some(),
                "webex" => channels.webex.is_some(),
                "email" => channels.email.is_some(),
                "teams" => channels.teams.is_some(),
                "gchat" => channels.gchat.is_some(),
                "whatsapp" => channels.whatsapp.is_some(),
                "matrix" => channels.matrix.is_some(),
                "signal" => channels.signal.is_some(),
                _ => false,
            };
            if configured {
                names.push(s.to_string());
            } else {
                errs.push(&p, format!("{s:?} is not a configured channel (add [channels.{s}])"));
            }
        }
        a.channels = Some(names);
    }
    a
}
