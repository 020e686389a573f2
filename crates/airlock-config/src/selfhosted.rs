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

/// How `[channels.email]` secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Implicit TLS (SMTPS), default port 465.
    Tls,
    /// STARTTLS, required before AUTH or any mail; default port 587.
    StartTls,
    /// Plaintext: only toward a relay on loopback.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// SMTP server host name (what its certificate names).
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// `From:` mailbox, e.g. `airlock <airlock@example.com>`.
    pub from: String,
    /// The control plane as approvers' browsers reach it: links go to `{base_url}/email/vote`.
    pub base_url: String,
    /// An extra trusted root (PEM path, relative to the config file) for a private relay.
    pub ca: Option<String>,
}

/// `host[:port]`, the port defaulting by `security`; brackets around IPv6 literals.
fn smtp_addr(s: &str, security: SmtpSecurity) -> Option<(String, u16)> {
    let default = match security {
        SmtpSecurity::Tls => 465,
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::None => 25,
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        match tail {
            "" => (h, default),
            p => (h, p.strip_prefix(':')?.parse().ok()?),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
            Some(_) => return None,
            None => (s, default),
        }
    };
    let ok = !host.is_empty() && port != 0 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    ok.then(|| (host.to_ascii_lowercase(), port))
}

fn is_loopback_host(h: &str) -> bool {
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `Name <local@domain>` or `local@domain`, on one line.
fn is_mailbox(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        (None, false) => s,
        _ => return false,
    };
    crate::raw::single_line(s)
        && addr
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !addr.contains(char::is_whitespace))
}

pub(crate) fn read_email(t: &Table, path: KeyPath, errs: &mut Errors) -> Option<EmailConfig> {
    let f = Fields::new(
        t,
        path,
        &["smtp", "security", "username", "password", "from", "base_url", "ca"],
        errs,
    );
    let security = match f.str("security", errs).unwrap_or("starttls") {
        "starttls" => SmtpSecurity::StartTls,
        "tls" => SmtpSecurity::Tls,
        "none" => SmtpSecurity::None,
        _ => {
            errs.push(
                &f.at("security"),
                "must be \"starttls\" (default), \"tls\" or \"none\" (loopback only)",
            );
            SmtpSecurity::StartTls
        }
    };
    let smtp = f.str("smtp", errs).and_then(|s| {
        let addr = smtp_addr(s, security);
        if addr.is_none() {
            errs.push(
                &f.at("smtp"),
                "must be the SMTP server as host or host:port, e.g. \"smtp.example.com:587\"",
            );
        }
        addr
    });
    if let Some((host, _)) = &smtp
        && security == SmtpSecurity::None
        && !is_loopback_host(host)
    {
        errs.push(
            &f.at("security"),
            format!("\"none\" would send the SMTP password and every card in clear text to {host}: use \"starttls\" or \"tls\" (\"none\" only toward a relay on loopback)"),
        );
    }
    let from = f.str("from", errs).filter(|s| {
        let ok = is_mailbox(s);
        if !ok {
            errs.push(
                &f.at("from"),
                "must be a mailbox such as \"airlock <airlock@example.com>\"",
            );
        }
        ok
    });
    let base_url = channel_url(&f, "base_url", errs).map(|u| u.trim_end_matches('/').to_string());
    for (key, what) in [
        ("smtp", "the SMTP server, e.g. \"smtp.example.com:587\""),
        ("from", "the sender, e.g. \"airlock <airlock@example.com>\""),
        (
            "base_url",
            "the control plane's URL as approvers' browsers reach it (links go to {base_url}/email/vote)",
        ),
    ] {
        if !f.has(key) {
            errs.push(&f.at(key), format!("required: {what}"));
        }
    }
    let username = f.str("username", errs).map(str::to_string);
    let password = secret_ref(&f, "password", false, errs);
    if username.is_some() != password.is_some() {
        errs.push(&f.path, "username and password go together (SMTP AUTH), or neither");
    }
    let ca = f.str("ca", errs).map(str::to_string);
    let (host, port) = smtp?;
    Some(EmailConfig {
        host,
        port,
        security,
        username,
        password,
        from: from?.to_string(),
        base_url: base_url?,
        ca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_addresses() {
        assert_eq!(
            smtp_addr("smtp.example.com", SmtpSecurity::StartTls),
            Some(("smtp.example.com".into(), 587))
        );
        assert_eq!(
            smtp_addr("smtp.example.com", SmtpSecurity::Tls),
            Some(("smtp.example.com".into(), 465))
        );
        assert_eq!(
            smtp_addr("127.0.0.1:2525", SmtpSecurity::None),
            Some(("127.0.0.1".into(), 2525))
        );
        assert_eq!(smtp_addr("[::1]:25", SmtpSecurity::None), Some(("::1".into(), 25)));
        for bad in ["", ":25", "host:0", "host:x", "a b:25", "::1:25", "[::1", "host/x:25"] {
            assert_eq!(smtp_addr(bad, SmtpSecurity::StartTls), None, "{bad}");
        }
        assert!(is_mailbox("airlock <airlock@example.com>") && is_mailbox("a@example.com"));
        assert!(!is_mailbox("airlock") && !is_mailbox("a <b@example.com") && !is_mailbox("a@b.c\nBcc: x@y.z"));
    }
}
