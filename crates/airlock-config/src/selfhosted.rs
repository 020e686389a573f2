//! `[channels.*]` of the self-hosted platforms: ntfy (and, as they land, Mattermost, Matrix,
//! Signal and email). Kept apart from `approvals.rs` so each stays readable.

use toml::Table;

use crate::approvals::{SecretRef, channel_url, secret_ref};
use crate::error::{Errors, KeyPath};
use crate::raw::Fields;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfyConfig {
    /// The ntfy server; `None` → https://ntfy.sh.
    pub server: Option<String>,
    /// Access token of a user allowed to publish to the approvers' topics.
    pub token: Option<SecretRef>,
    /// The control plane as the approvers' phones reach it: action buttons POST to
    /// `{public_url}/callbacks/ntfy`.
    pub public_url: String,
    /// ntfy priority 1-5 (default 4, "high").
    pub priority: u8,
}

/// The default `[channels.ntfy] priority`.
pub const DEFAULT_NTFY_PRIORITY: u8 = 4;

/// True for an ntfy topic name: 1-64 of `A-Z a-z 0-9 _ -`.
pub(crate) fn is_topic(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn read_ntfy(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<NtfyConfig> {
    let f = Fields::new(t, path, &["server", "token", "public_url", "priority"], errs);
    let server = channel_url(&f, "server", errs).map(|u| u.trim_end_matches('/').to_string());
    let token = secret_ref(&f, "token", false, errs);
    let public_url = channel_url(&f, "public_url", errs).map(|u| u.trim_end_matches('/').to_string());
    if !f.has("public_url") {
        errs.push(
            &f.at("public_url"),
            "required: the control plane's URL as approvers' phones reach it (buttons POST to {public_url}/callbacks/ntfy)",
        );
    }
    let mut priority = DEFAULT_NTFY_PRIORITY;
    if let Some(p) = f.int("priority", errs) {
        match u8::try_from(p) {
            Ok(p @ 1..=5) => priority = p,
            _ => errs.push(&f.at("priority"), "must be an ntfy priority from 1 (min) to 5 (max)"),
        }
    }
    Some(NtfyConfig {
        server,
        token,
        public_url: public_url?,
        priority,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MattermostConfig {
    /// The Mattermost server.
    pub url: String,
    /// The bot account's access token.
    pub bot_token: SecretRef,
    /// Carried in each button's server-side context and required back on every callback.
    pub callback_secret: SecretRef,
    /// The control plane as the Mattermost server reaches it: buttons call
    /// `{public_url}/callbacks/mattermost`.
    pub public_url: String,
}

pub(crate) fn read_mattermost(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<MattermostConfig> {
    let f = Fields::new(t, path, &["url", "bot_token", "callback_secret", "public_url"], errs);
    let url = channel_url(&f, "url", errs).map(|u| u.trim_end_matches('/').to_string());
    let public_url = channel_url(&f, "public_url", errs).map(|u| u.trim_end_matches('/').to_string());
    for (key, what) in [
        ("url", "the Mattermost server, e.g. https://chat.example.com"),
        (
            "public_url",
            "the control plane's URL as the Mattermost server reaches it",
        ),
    ] {
        if !f.has(key) {
            errs.push(&f.at(key), format!("required: {what}"));
        }
    }
    let bot_token = secret_ref(&f, "bot_token", true, errs);
    let callback_secret = secret_ref(&f, "callback_secret", true, errs);
    Some(MattermostConfig {
        url: url?,
        bot_token: bot_token?,
        callback_secret: callback_secret?,
        public_url: public_url?,
    })
}
