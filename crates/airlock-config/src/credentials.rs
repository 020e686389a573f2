//! `[secrets.NAME] kind = "oauth2" | "github_app" | "aws"`: credentials the gateway mints,
//! refreshes or signs with itself, instead of a static value sealed by `airlock secret set`. The placeholder, hosts and
//! slot rules are a static secret's (`secrets.rs`); this reads what the gateway needs to obtain
//! the current token.

use crate::approvals::{SecretRef, channel_url, secret_ref};
use crate::error::Errors;
use crate::raw::{Fields, valid_name};

/// A credential the gateway obtains at run time, by the name of its `[secrets.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub name: String,
    pub kind: CredentialKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// An OAuth2 connection: `airlock connect NAME` seals its refresh token (the secret's vault
    /// entry); the gateway injects a current access token.
    OAuth2(OAuth2),
    /// A GitHub App installation: the secret's vault entry is the App's private key (PEM); the
    /// gateway injects an installation token.
    GithubApp(GithubApp),
    /// AWS keys: the secret's vault entry is the secret access key; the gateway re-signs (Signature
    /// V4) requests the agent signed with the placeholder key id.
    Aws(Aws),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aws {
    /// The real access key id: an identifier rather than a secret, but kept and scrubbed like one.
    pub access_key_id: SecretRef,
    /// For temporary credentials: sent as `X-Amz-Security-Token` with each re-signed request.
    pub session_token: Option<SecretRef>,
    /// What the sandbox gets as `AWS_SECRET_ACCESS_KEY`, so SDKs sign (with a key worth nothing).
    pub secret_placeholder: String,
    /// A role the keys above assume with STS: requests are then re-signed with its temporary keys.
    pub assume_role: Option<AssumeRole>,
}

/// `role_arn` and friends: STS `AssumeRole`, called with the secret's keys, cached until shortly
/// before the temporary keys expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    /// The role's trust policy may demand it (`sts:ExternalId`); not a secret.
    pub external_id: Option<String>,
    /// Shown in CloudTrail as who used the role; default `airlock-NAME`.
    pub session_name: String,
    /// Seconds the temporary keys are asked to last (`duration`, "15m" to "12h"; default "1h").
    pub duration_secs: u32,
    /// `https://sts.amazonaws.com` unless set (a regional endpoint, tests).
    pub sts_endpoint: String,
    /// The region STS requests are signed for: `us-east-1` unless set.
    pub sts_region: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// `google`, `microsoft`, `github` or `generic`.
    pub provider: String,
    pub auth_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub client_secret: Option<SecretRef>,
    pub client_auth: ClientAuth,
    /// Extra authorization-request parameters the provider needs for a refresh token.
    pub auth_params: Vec<(String, String)>,
    /// Where the provider redirects; default: the control listener's `/oauth/callback`.
    pub redirect_uri: Option<String>,
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id`/`client_secret` in the form body.
    Post,
    /// HTTP Basic with the form-encoded id and secret.
    Basic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubApp {
    /// The App's id (or client id): the `iss` of its JWT.
    pub app_id: String,
    pub installation_id: u64,
    /// `https://api.github.com` unless set (GitHub Enterprise, tests).
    pub api_url: String,
}

pub(crate) const OAUTH2_KEYS: &[&str] = &[
    "provider",
    "auth_url",
    "token_url",
    "scopes",
    "client_id",
    "client_secret",
    "client_auth",
    "tenant",
    "redirect_uri",
];
pub(crate) const GITHUB_APP_KEYS: &[&str] = &["app_id", "installation_id", "api_url"];
pub(crate) const AWS_KEYS: &[&str] = &[
    "access_key_id",
    "session_token",
    "secret_placeholder",
    "role_arn",
    "external_id",
    "session_name",
    "duration",
    "sts_endpoint",
    "sts_region",
];
/// The keys that only mean something with `role_arn`.
const ROLE_KEYS: [&str; 5] = ["external_id", "session_name", "duration", "sts_endpoint", "sts_region"];

/// `(auth_url, token_url, extra authorization parameters)` of a provider preset.
type Preset = (String, String, Vec<(String, String)>);

fn preset(provider: &str, tenant: &str) -> Option<Preset> {
    let p = |a: &str, b: &str| (a.to_string(), b.to_string());
    Some(match provider {
        // Google issues a refresh token only for offline access, and again only on consent.
        "google" => (
            "https://accounts.google.com/o/oauth2/v2/auth".into(),
            "https://oauth2.googleapis.com/token".into(),
            vec![p("access_type", "offline"), p("prompt", "consent")],
        ),
        "microsoft" => (
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"),
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
            vec![],
        ),
        "github" => (
            "https://github.com/login/oauth/authorize".into(),
            "https://github.com/login/oauth/access_token".into(),
            vec![],
        ),
        _ => return None,
    })
}

pub(crate) fn oauth2(f: &Fields<'_>, errs: &mut Errors) -> Option<OAuth2> {
    let provider = f.str("provider", errs).unwrap_or("generic").to_string();
    let tenant = f.str("tenant", errs).unwrap_or("common");
    if !valid_name(tenant) {
        errs.push(
            &f.at("tenant"),
            "a tenant is a directory id or common, organizations, consumers",
        );
    }
    let (auth_url, token_url, auth_params) = match (provider.as_str(), preset(&provider, tenant)) {
        ("generic", _) => {
            for k in ["auth_url", "token_url"] {
                if !f.has(k) {
                    errs.push(&f.at(k), "a generic OAuth2 connection needs auth_url and token_url");
                }
            }
            (
                channel_url(f, "auth_url", errs)?,
                channel_url(f, "token_url", errs)?,
                vec![],
            )
        }
        (_, Some((a, t, p))) => (
            f.has("auth_url")
                .then(|| channel_url(f, "auth_url", errs))
                .flatten()
                .unwrap_or(a),
            f.has("token_url")
                .then(|| channel_url(f, "token_url", errs))
                .flatten()
                .unwrap_or(t),
            p,
        ),
        (other, None) => {
            errs.push(
                &f.at("provider"),
                format!("unknown provider {other:?}: use google, microsoft, github or generic"),
            );
            return None;
        }
    };
    let scopes: Vec<String> = f.strs("scopes", errs).into_iter().map(|(_, s)| s.to_string()).collect();
    if scopes.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
        errs.push(&f.at("scopes"), "a scope is one word without spaces");
    }
    let Some(client_id) = f.str("client_id", errs) else {
        errs.push(
            &f.at("client_id"),
            "an OAuth2 connection needs the client_id of its app registration",
        );
        return None;
    };
    let client_auth = match f.str("client_auth", errs) {
        None | Some("post") => ClientAuth::Post,
        Some("basic") => ClientAuth::Basic,
        Some(o) => {
            errs.push(&f.at("client_auth"), format!("{o:?}: use \"post\" or \"basic\""));
            ClientAuth::Post
        }
    };
    let redirect_uri = f
        .has("redirect_uri")
        .then(|| channel_url(f, "redirect_uri", errs))
        .flatten();
    Some(OAuth2 {
        provider,
        auth_url,
        token_url,
        scopes,
        client_id: client_id.to_string(),
        client_secret: secret_ref(f, "client_secret", false, errs),
        client_auth,
        auth_params,
        redirect_uri,
    })
}

pub(crate) fn github_app(f: &Fields<'_>, errs: &mut Errors) -> Option<GithubApp> {
    let app_id = match f.value("app_id") {
        Some(toml::Value::Integer(i)) if *i > 0 => i.to_string(),
        Some(toml::Value::String(s)) if valid_name(s) => s.clone(),
        _ => {
            errs.push(
                &f.at("app_id"),
                "the GitHub App's id (a number) or client id is required",
            );
            return None;
        }
    };
    let installation_id = match f.int("installation_id", errs) {
        Some(i) if i > 0 => i as u64,
        _ => {
            errs.push(
                &f.at("installation_id"),
                "the installation id (a positive number) is required",
            );
            return None;
        }
    };
    let api_url = if f.has("api_url") {
        channel_url(f, "api_url", errs)?.trim_end_matches('/').to_string()
    } else {
        "https://api.github.com".to_string()
    };
    Some(GithubApp {
        app_id,
        installation_id,
        api_url,
    })
}

pub(crate) fn aws(name: &str, f: &Fields<'_>, errs: &mut Errors) -> Option<Aws> {
    let access_key_id = secret_ref(f, "access_key_id", true, errs);
    let session_token = secret_ref(f, "session_token", false, errs);
    let secret_placeholder = match f.str("secret_placeholder", errs) {
        Some(p) if p.len() >= 8 && p.bytes().all(|b| b.is_ascii_graphic()) => p.to_string(),
        Some(_) => {
            errs.push(
                &f.at("secret_placeholder"),
                "a placeholder is at least 8 printable ASCII characters without spaces",
            );
            return None;
        }
        None => format!("airlock-aws-secret-placeholder-{name}"),
    };
    let assume_role = assume_role(name, f, errs);
    Some(Aws {
        access_key_id: access_key_id?,
        session_token,
        secret_placeholder,
        assume_role: assume_role?,
    })
}

/// `Some(None)`: no role; `None`: a role declared wrongly (reported).
fn assume_role(name: &str, f: &Fields<'_>, errs: &mut Errors) -> Option<Option<AssumeRole>> {
    let Some(role_arn) = f.str("role_arn", errs) else {
        if f.has("role_arn") {
            return None;
        }
        let stray: Vec<&str> = ROLE_KEYS.into_iter().filter(|k| f.has(k)).collect();
        for k in &stray {
            errs.push(
                &f.at(k),
                format!("{k} only applies to an assumed role: set role_arn too"),
            );
        }
        return stray.is_empty().then_some(None);
    };
    let before = errs.list.len();
    // arn:PARTITION:iam::ACCOUNT:role/PATH/NAME
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let arn_ok = matches!(parts.as_slice(), ["arn", p, "iam", "", account, res]
        if p.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && res.len() > 5
            && res.starts_with("role/")
            && res.bytes().all(|b| b.is_ascii_graphic()));
    if !arn_ok {
        errs.push(
            &f.at("role_arn"),
            format!("{role_arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"),
        );
    }
    // AWS's own patterns: [\w+=,.@-]{2,64} for a session name, [\w+=,.@:/-]{2,1224} for an external id.
    let word = |b: u8, extra: &[u8]| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b) || extra.contains(&b);
    let session_name = match f.str("session_name", errs) {
        Some(s) if (2..=64).contains(&s.len()) && s.bytes().all(|b| word(b, b"")) => s.to_string(),
        Some(_) => {
            errs.push(
                &f.at("session_name"),
                "a role session name is 2 to 64 of A-Z a-z 0-9 _ + = , . @ -",
            );
            String::new()
        }
        None => format!("airlock-{name}"),
    };
    let external_id = match f.str("external_id", errs) {
        Some(s) if (2..=1224).contains(&s.len()) && s.bytes().all(|b| word(b, b":/")) => Some(s.to_string()),
        Some(_) => {
            errs.push(
                &f.at("external_id"),
                "an external id is 2 to 1224 of A-Z a-z 0-9 _ + = , . @ : / -",
            );
            None
        }
        None => None,
    };
    let duration_secs = match f.str("duration", errs).map(|d| (d, crate::addr::parse_duration(d))) {
        None => 3600,
        Some((_, Some(d @ 900..=43_200))) => d as u32,
        Some((d, _)) => {
            errs.push(
                &f.at("duration"),
                format!(
                    "{d:?}: an assumed role's keys last from \"15m\" to \"12h\" \
                     (and at most the role's maximum session duration)"
                ),
            );
            0
        }
    };
    let sts_endpoint = if f.has("sts_endpoint") {
        channel_url(f, "sts_endpoint", errs).unwrap_or_default()
    } else {
        "https://sts.amazonaws.com".to_string()
    };
    let sts_region = f.str("sts_region", errs).unwrap_or("us-east-1");
    if sts_region.is_empty()
        || !sts_region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push(&f.at("sts_region"), "a region is like us-east-1: a-z 0-9 -");
    }
    if errs.list.len() > before {
        return None;
    }
    Some(Some(AssumeRole {
        role_arn: role_arn.to_string(),
        external_id,
        session_name,
        duration_secs,
        sts_endpoint,
        sts_region: sts_region.to_string(),
    }))
}

/// The credential named `name` from its `[secrets.NAME]` table, read with the kind's keys.
pub(crate) fn read(name: &str, kind: &str, f: &Fields<'_>, errs: &mut Errors) -> Option<Credential> {
    let kind = match kind {
        "oauth2" => CredentialKind::OAuth2(oauth2(f, errs)?),
        "github_app" => CredentialKind::GithubApp(github_app(f, errs)?),
        "aws" => CredentialKind::Aws(aws(name, f, errs)?),
        _ => return None,
    };
    Some(Credential {
        name: name.to_string(),
        kind,
    })
}
