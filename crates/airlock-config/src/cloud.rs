//! `[channels.*]` of the hosted enterprise platforms: Microsoft Teams and Google Chat.
//! Kept apart from `approvals.rs` so each stays readable.

use toml::Table;

use crate::approvals::{SecretRef, channel_url, secret_ref};
use crate::error::{Errors, KeyPath};
use crate::raw::Fields;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsConfig {
    /// The bot's Microsoft App ID (not a secret): the audience of the Bot Framework's tokens.
    pub app_id: String,
    /// The app registration's client secret.
    pub app_password: SecretRef,
    /// Single-tenant bots: the tenant whose token endpoint is used and whose activities count.
    pub tenant_id: Option<String>,
    /// Entra token endpoint (default: the tenant's, or botframework.com's).
    pub token_url: Option<String>,
    /// Bot Framework OpenID metadata (default https://login.botframework.com/v1/.well-known/openidconfiguration).
    pub openid_url: Option<String>,
}

/// A GUID (Entra application, tenant and object ids).
pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

pub(crate) fn read_teams(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<TeamsConfig> {
    let f = Fields::new(
        t,
        path,
        &["app_id", "app_password", "tenant_id", "token_url", "openid_url"],
        errs,
    );
    let mut guid = |key: &str, what: &str| -> Option<String> {
        let s = f.str(key, errs)?.trim();
        if is_guid(s) {
            Some(s.to_ascii_lowercase())
        } else {
            errs.push(
                &f.at(key),
                format!("must be {what}: a GUID like 5b1c0f3e-9e41-4c11-8b7a-0d5e4a7f2c10"),
            );
            None
        }
    };
    let app_id = guid("app_id", "the bot's Microsoft App ID (Azure Bot, Configuration)");
    let tenant_id = guid("tenant_id", "the Microsoft Entra tenant (directory) id");
    if !f.has("app_id") {
        errs.push(&f.at("app_id"), "required: the bot's Microsoft App ID");
    }
    let app_password = secret_ref(&f, "app_password", true, errs);
    let token_url = channel_url(&f, "token_url", errs);
    let openid_url = channel_url(&f, "openid_url", errs);
    Some(TeamsConfig {
        app_id: app_id?,
        app_password: app_password?,
        tenant_id,
        token_url,
        openid_url,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GchatConfig {
    /// The service account's JSON key (the whole file), which the app sends as.
    pub service_account_key: SecretRef,
    /// The app's "Authentication Audience" (its Cloud project number, or its HTTP endpoint URL):
    /// events POSTed to `/callbacks/gchat` are verified against it.
    pub audience: Option<String>,
    /// `projects/P/subscriptions/S`: events pulled from Cloud Pub/Sub (no public URL).
    pub subscription: Option<String>,
    /// The Pub/Sub API (default https://pubsub.googleapis.com/v1).
    pub pubsub_url: Option<String>,
    /// The Chat API (default https://chat.googleapis.com/v1).
    pub api_url: Option<String>,
    /// The OAuth token endpoint (default: the key's `token_uri`).
    pub token_url: Option<String>,
    /// Google's signing keys for the audience's kind (default: Chat's, or Google's OIDC keys).
    pub jwks_url: Option<String>,
}

/// `users/123…`.
pub(crate) fn is_gchat_user(s: &str) -> bool {
    s.strip_prefix("users/")
        .is_some_and(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub(crate) fn read_gchat(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<GchatConfig> {
    let f = Fields::new(
        t,
        path,
        &[
            "service_account_key",
            "audience",
            "subscription",
            "api_url",
            "token_url",
            "jwks_url",
            "pubsub_url",
        ],
        errs,
    );
    let key = secret_ref(&f, "service_account_key", true, errs);
    let audience = match f.str("audience", errs).map(str::trim) {
        Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => Some(a.to_string()),
        Some(a) if a.starts_with("https://") => Some(a.to_string()),
        Some(_) => {
            errs.push(
                &f.at("audience"),
                "must be the app's Authentication Audience: the Cloud project number (digits) or the https:// endpoint URL",
            );
            None
        }
        None => None,
    };
    let subscription = f.str("subscription", errs).map(str::trim).and_then(|s| {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = parts.len() == 4
            && parts[0] == "projects"
            && parts[2] == "subscriptions"
            && [parts[1], parts[3]]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~+%".contains(&b)));
        if !ok {
            errs.push(&f.at("subscription"), "must be projects/PROJECT/subscriptions/NAME");
        }
        ok.then(|| s.to_string())
    });
    if !f.has("audience") && !f.has("subscription") {
        errs.push(
            &f.path,
            "Google Chat needs subscription (Cloud Pub/Sub, no public URL) or audience (events on /callbacks/gchat) to receive clicks",
        );
    }
    let pubsub_url = channel_url(&f, "pubsub_url", errs).map(|u| u.trim_end_matches('/').to_string());
    let api_url = channel_url(&f, "api_url", errs).map(|u| u.trim_end_matches('/').to_string());
    let token_url = channel_url(&f, "token_url", errs);
    let jwks_url = channel_url(&f, "jwks_url", errs);
    Some(GchatConfig {
        service_account_key: key?,
        audience,
        subscription,
        pubsub_url,
        api_url,
        token_url,
        jwks_url,
    })
}
