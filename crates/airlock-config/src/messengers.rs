//! `[channels.*]` of the messengers: WhatsApp, Matrix and Signal. Kept
//! apart from `approvals.rs` so each stays readable.

use toml::Table;

use crate::approvals::{SecretRef, channel_url, secret_ref};
use crate::error::{Errors, KeyPath};
use crate::raw::Fields;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppConfig {
    /// The business phone number's id (WhatsApp Manager → API Setup), digits.
    pub phone_number_id: String,
    /// A system user's access token.
    pub access_token: SecretRef,
    /// The Meta app's secret: every webhook is signed with it.
    pub app_secret: SecretRef,
    /// The verify token entered when subscribing the webhook.
    pub verify_token: SecretRef,
    /// The control plane as Meta and the approvers reach it: webhooks go to
    /// `{public_url}/callbacks/whatsapp`, cards link to `{public_url}/dashboard/approvals/ID`.
    pub public_url: String,
    /// An approved template with two quick-reply buttons, for approvers outside the 24-hour window.
    pub template: Option<String>,
    /// The template's language code (default `en_US`).
    pub template_language: String,
    pub api_url: Option<String>,
}

/// True for a WhatsApp id: the number in international form, digits only.
pub(crate) fn is_wa_id(s: &str) -> bool {
    (6..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_template_word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn read_whatsapp(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<WhatsAppConfig> {
    let f = Fields::new(
        t,
        path,
        &[
            "phone_number_id",
            "access_token",
            "app_secret",
            "verify_token",
            "public_url",
            "template",
            "template_language",
            "api_url",
        ],
        errs,
    );
    let phone_number_id = f.str("phone_number_id", errs).and_then(|p| {
        let ok = !p.is_empty() && p.len() <= 32 && p.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            errs.push(
                &f.at("phone_number_id"),
                "must be the phone number's id (digits, from WhatsApp Manager → API Setup), not the number",
            );
        }
        ok.then(|| p.to_string())
    });
    if !f.has("phone_number_id") {
        errs.push(&f.at("phone_number_id"), "required: the business phone number's id");
    }
    let public_url = channel_url(&f, "public_url", errs).map(|u| u.trim_end_matches('/').to_string());
    if !f.has("public_url") {
        errs.push(
            &f.at("public_url"),
            "required: the control plane's URL as Meta reaches it (webhooks go to {public_url}/callbacks/whatsapp)",
        );
    }
    let access_token = secret_ref(&f, "access_token", true, errs);
    let app_secret = secret_ref(&f, "app_secret", true, errs);
    let verify_token = secret_ref(&f, "verify_token", true, errs);
    let mut word = |key: &str, what: &str| {
        f.str(key, errs).and_then(|s| {
            if is_template_word(s) {
                Some(s.to_string())
            } else {
                errs.push(&f.at(key), format!("must be {what}: letters, digits and _"));
                None
            }
        })
    };
    let template = word("template", "an approved template's name");
    let template_language = word("template_language", "a template language code such as en_US");
    let api_url = channel_url(&f, "api_url", errs).map(|u| u.trim_end_matches('/').to_string());
    Some(WhatsAppConfig {
        phone_number_id: phone_number_id?,
        access_token: access_token?,
        app_secret: app_secret?,
        verify_token: verify_token?,
        public_url: public_url?,
        template,
        template_language: template_language.unwrap_or_else(|| "en_US".into()),
        api_url,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixConfig {
    /// The homeserver's client-server API base URL.
    pub homeserver: String,
    /// The bot account's access token.
    pub access_token: SecretRef,
}

/// True for a full Matrix user id: `@localpart:server`.
pub(crate) fn is_matrix_user(s: &str) -> bool {
    s.len() <= 255
        && s.len() > 3
        && s.starts_with('@')
        && s[1..]
            .split_once(':')
            .is_some_and(|(l, srv)| !l.is_empty() && !srv.is_empty())
        && !s.chars().any(char::is_whitespace)
}

pub(crate) fn read_matrix(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<MatrixConfig> {
    let f = Fields::new(t, path, &["homeserver", "access_token"], errs);
    let homeserver = channel_url(&f, "homeserver", errs).map(|u| u.trim_end_matches('/').to_string());
    if !f.has("homeserver") {
        errs.push(
            &f.at("homeserver"),
            "required: the homeserver's client-server API URL, e.g. https://matrix.example.org",
        );
    }
    let access_token = secret_ref(&f, "access_token", true, errs);
    Some(MatrixConfig {
        homeserver: homeserver?,
        access_token: access_token?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalConfig {
    /// The signal-cli daemon's HTTP endpoint (`daemon --http`); `None` → http://127.0.0.1:8080.
    pub url: Option<String>,
    /// The bot's number, for a daemon serving several accounts.
    pub account: Option<String>,
}

/// True for a number in E.164 form: `+` and 6 to 15 digits.
pub(crate) fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn read_signal(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<SignalConfig> {
    let f = Fields::new(t, path, &["url", "account"], errs);
    let url = channel_url(&f, "url", errs).map(|u| u.trim_end_matches('/').to_string());
    let account = f.str("account", errs).and_then(|a| {
        if is_e164(a) {
            Some(a.to_string())
        } else {
            errs.push(
                &f.at("account"),
                "must be the bot's number in E.164 form, e.g. +15550000000",
            );
            None
        }
    });
    Some(SignalConfig { url, account })
}
