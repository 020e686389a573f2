//! `[channels.*]` of the hosted enterprise platforms: Microsoft Teams (and Google Chat).
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
