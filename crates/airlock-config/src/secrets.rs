//! `[secrets.*]` and `[[agents]]`.

use std::net::IpAddr;

use airlock_core::glob::HostPattern;
use airlock_core::inject::{SecretDecl, Slot};
use toml::{Table, Value};

use crate::credentials::{self, Credential};
use crate::error::{Errors, KeyPath};
use crate::raw::{Fields, as_table, single_line, valid_name, valid_token};

/// One `[[agents]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The agent's name, or a glob (`"ag-*"`: a prefix and one trailing `*`) that gives every
    /// agent so named — typically those created through the OneCLI-compatible API — its
    /// secrets and rules.
    pub name: String,
    /// Names of the secrets this agent may have injected; each is declared.
    pub secrets: Vec<String>,
    /// Names of the `[databases.*]` entries this agent may connect to; each is declared.
    pub databases: Vec<String>,
}

impl Agent {
    /// True for a glob entry (`name` ends in `*`).
    pub fn is_glob(&self) -> bool {
        self.name.ends_with('*')
    }

    /// True when this is a glob entry whose prefix starts `agent` (never for another glob).
    pub fn glob_matches(&self, agent: &str) -> bool {
        self.name
            .strip_suffix('*')
            .is_some_and(|p| agent.starts_with(p) && !agent.contains('*'))
    }
}

/// A host pattern as written in a rule (`allow_any`: `"*"` is accepted) or a secret.
pub(crate) fn host_pattern(s: &str, allow_any: bool) -> Result<HostPattern, String> {
    let p = HostPattern::parse(s)?;
    let body = match &p {
        HostPattern::Any if allow_any => return Ok(p),
        HostPattern::Any => {
            return Err("a secret must name its hosts: \"*\" would let its credential go anywhere".into());
        }
        HostPattern::Exact(h) => h.as_str(),
        HostPattern::Suffix(sfx) => sfx.trim_start_matches('.'),
    };
    let hostname = !body.starts_with('.')
        && !body.contains("..")
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    let ip = matches!(p, HostPattern::Exact(_)) && body.parse::<IpAddr>().is_ok();
    if hostname || ip {
        Ok(p)
    } else {
        Err(format!(
            "bad host pattern {s:?}: use an exact host (\"api.example.com\") or \"*.example.com\" \
             (no scheme, port or path)"
        ))
    }
}

const SECRET_KEYS: &[&str] = &[
    "hosts",
    "header",
    "query",
    "basic_user",
    "format",
    "placeholder",
    "env",
    "allow_http",
];
const SLOT_KEYS: &[&str] = &["header", "query", "basic_user"];
/// Headers that frame or route the request: injecting into them would be meaningless or harmful.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
];

fn valid_env(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn slot(f: &Fields<'_>, errs: &mut Errors) -> Option<Slot> {
    let present: Vec<&str> = SLOT_KEYS.iter().copied().filter(|k| f.has(k)).collect();
    match present.as_slice() {
        [] => {
            errs.push(
                &f.path,
                "needs exactly one slot: header = NAME, query = NAME or basic_user = USER",
            );
            return None;
        }
        [_] => {}
        [first, rest @ ..] => {
            for k in rest {
                errs.push(
                    &f.at(k),
                    format!("a secret goes into exactly one slot, but both {first} and {k} are set"),
                );
            }
            return None;
        }
    }
    if let Some(h) = f.str("header", errs) {
        let lower = h.to_ascii_lowercase();
        if !valid_token(h) {
            errs.push(&f.at("header"), format!("{h:?} is not a valid header name"));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            errs.push(&f.at("header"), format!("{h:?} cannot carry a credential"));
        } else {
            return Some(Slot::Header(lower));
        }
    } else if let Some(q) = f.str("query", errs) {
        if q.is_empty()
            || q.chars()
                .any(|c| c.is_control() || c.is_whitespace() || "&=#?".contains(c))
        {
            errs.push(&f.at("query"), format!("{q:?} is not a valid query parameter name"));
        } else {
            return Some(Slot::Query(q.to_string()));
        }
    } else if let Some(u) = f.str("basic_user", errs) {
        if u.contains(':') || !single_line(u) {
            errs.push(
                &f.at("basic_user"),
                "a basic-auth user name may not contain ':' or control characters",
            );
        } else {
            return Some(Slot::Basic { user: u.to_string() });
        }
    }
    None
}

fn secret(name: &str, t: &Table, path: KeyPath, errs: &mut Errors) -> Option<(SecretDecl, Option<Credential>)> {
    let kind = match t.get("kind") {
        None => "static",
        Some(Value::String(k)) if ["static", "oauth2", "github_app", "aws"].contains(&k.as_str()) => k.as_str(),
        Some(_) => {
            errs.push(
                &path.key("kind"),
                "kind is \"static\" (the default), \"oauth2\", \"github_app\" or \"aws\"",
            );
            return None;
        }
    };
    let extra = match kind {
        "oauth2" => credentials::OAUTH2_KEYS,
        "github_app" => credentials::GITHUB_APP_KEYS,
        "aws" => credentials::AWS_KEYS,
        _ => &[],
    };
    let allowed: Vec<&str> = SECRET_KEYS.iter().chain(extra).copied().chain(["kind"]).collect();
    let f = Fields::new(t, path, &allowed, errs);
    let before = errs.list.len();
    let cred = credentials::read(name, kind, &f, errs);
    if !valid_name(name) {
        errs.push(&f.path, "a secret name is 1 to 64 of A-Z a-z 0-9 . _ -");
    }
    let mut hosts = Vec::new();
    for (p, h) in f.strs("hosts", errs) {
        match host_pattern(h, false) {
            Ok(hp) => hosts.push(hp),
            Err(e) => errs.push(&p, e),
        }
    }
    if kind == "github_app" && !f.has("hosts") {
        hosts = ["api.github.com", "github.com"]
            .map(|h| HostPattern::Exact(h.to_string()))
            .to_vec();
    } else if !f.has("hosts") || matches!(f.value("hosts"), Some(Value::Array(a)) if a.is_empty()) {
        errs.push(
            &f.at("hosts"),
            "at least one host is required: a secret is only ever sent to its hosts",
        );
    }
    let has_slot = SLOT_KEYS.iter().any(|k| f.has(k));
    let (slot, default_format) = match kind {
        // The token goes where OAuth2 and GitHub put it: `Authorization: Bearer`, or for git over
        // HTTPS, as the password of `x-access-token`.
        "github_app" if has_slot => {
            errs.push(
                &f.path,
                "a github_app secret's slot is the Authorization header: remove header/query/basic_user",
            );
            (None, "")
        }
        "github_app" => (
            Some(Slot::Authorization {
                basic_user: "x-access-token".into(),
            }),
            "Bearer {secret}",
        ),
        "oauth2" if !has_slot => (Some(Slot::Header("authorization".into())), "Bearer {secret}"),
        // The placeholder key id travels in the agent's SigV4 `Authorization` or presigned URL;
        // the gateway re-signs.
        "aws" if has_slot || f.has("format") => {
            errs.push(
                &f.path,
                "an aws secret's slot is the SigV4 Authorization header: remove header/query/basic_user/format",
            );
            (None, "")
        }
        "aws" => (Some(Slot::AwsSignature), "{secret}"),
        _ => (slot(&f, errs), "{secret}"),
    };
    let format = f.str("format", errs).unwrap_or(default_format).to_string();
    if format.matches("{secret}").count() != 1 {
        errs.push(
            &f.at("format"),
            format!("{format:?} must contain \"{{secret}}\" exactly once"),
        );
    } else if !single_line(&format) {
        errs.push(&f.at("format"), "must not contain control characters");
    }
    let placeholder = match f.str("placeholder", errs) {
        Some(p) => {
            if p.len() < 8 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                errs.push(
                    &f.at("placeholder"),
                    "a placeholder is at least 8 printable ASCII characters without spaces",
                );
            }
            p.to_string()
        }
        None => format!("airlock-placeholder-{name}"),
    };
    let env = f
        .str("env", errs)
        .map(str::to_string)
        .or_else(|| (kind == "aws").then(|| "AWS_ACCESS_KEY_ID".to_string()));
    if let Some(e) = &env
        && !valid_env(e)
    {
        errs.push(&f.at("env"), format!("{e:?} is not a valid environment variable name"));
    }
    let allow_http = f.bool("allow_http", errs).unwrap_or(false);
    if kind == "aws" && allow_http {
        errs.push(&f.at("allow_http"), "AWS requests are re-signed over TLS only");
    }
    if errs.list.len() > before {
        return None;
    }
    let decl = SecretDecl {
        name: name.to_string(),
        hosts,
        slot: slot?,
        format,
        placeholder,
        env,
        allow_http,
    };
    if kind != "static" && cred.is_none() {
        return None;
    }
    Some((decl, cred))
}

/// Reads `[secrets]`. Returns the valid declarations, the names of all declared secrets, and the
/// credentials the gateway obtains itself (`kind = "oauth2"`, `"github_app"`).
pub(crate) fn read_secrets(
    table: Option<&Table>,
    errs: &mut Errors,
) -> (Vec<SecretDecl>, Vec<String>, Vec<Credential>) {
    let root = KeyPath::root().key("secrets");
    let mut decls: Vec<SecretDecl> = Vec::new();
    let mut creds = Vec::new();
    let mut names = Vec::new();
    for (name, v) in table.into_iter().flatten() {
        names.push(name.clone());
        let path = root.key(name);
        if let Some(t) = as_table(v, &path, errs)
            && let Some((d, c)) = secret(name, t, path, errs)
        {
            decls.push(d);
            creds.extend(c);
        }
    }
    // Cross-checks: placeholders must be found unambiguously, env names must not collide.
    for (j, b) in decls.iter().enumerate() {
        let at = root.key(&b.name);
        for a in &decls[..j] {
            if a.placeholder == b.placeholder {
                errs.push(
                    &at.key("placeholder"),
                    format!("same placeholder as secret {:?}", a.name),
                );
            } else if a.placeholder.contains(&b.placeholder) || b.placeholder.contains(&a.placeholder) {
                errs.push(
                    &at.key("placeholder"),
                    format!(
                        "placeholder {:?} and secret {:?}'s placeholder {:?} contain one another, so a request \
                         could not say which secret it means; set a `placeholder` on one of them that neither \
                         contains nor is contained in the other",
                        b.placeholder, a.name, a.placeholder
                    ),
                );
            }
            if let (Some(ea), Some(eb)) = (&a.env, &b.env)
                && ea == eb
            {
                errs.push(&at.key("env"), format!("{eb:?} is also the env of secret {:?}", a.name));
            }
        }
    }
    (decls, names, creds)
}

/// `value` must be an array of tables (`[[key]]`); returns each with its path.
pub(crate) fn array_of_tables<'a>(value: Option<&'a Value>, key: &str, errs: &mut Errors) -> Vec<(KeyPath, &'a Table)> {
    let path = KeyPath::root().key(key);
    match value {
        None => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let p = path.index(i);
                as_table(v, &p, errs).map(|t| (p, t))
            })
            .collect(),
        Some(_) => {
            errs.push(
                &path,
                format!("expected an array of tables: write each entry as [[{key}]]"),
            );
            vec![]
        }
    }
}

/// Reads `[[agents]]`; `secret_names` are every declared secret (valid or not).
pub(crate) fn read_agents(
    value: Option<&Value>,
    secret_names: &[String],
    db_names: &[String],
    errs: &mut Errors,
) -> Vec<Agent> {
    let mut agents: Vec<Agent> = Vec::new();
    for (path, t) in array_of_tables(value, "agents", errs) {
        let f = Fields::new(t, path, &["name", "secrets", "databases"], errs);
        let name = f.str("name", errs);
        match name {
            None if !f.has("name") => errs.push(&f.at("name"), "every agent needs a name"),
            None => {}
            Some(n) if !valid_name(n.strip_suffix('*').unwrap_or(n)) || n.len() > 64 => errs.push(
                &f.at("name"),
                "an agent name is 1 to 64 of A-Z a-z 0-9 . _ -, or such a prefix and one trailing * (a glob)",
            ),
            Some(n) if agents.iter().any(|a| a.name == n) => {
                errs.push(&f.at("name"), format!("duplicate agent name {n:?}"));
            }
            Some(_) => {}
        }
        let mut secrets: Vec<String> = Vec::new();
        for (p, s) in f.strs("secrets", errs) {
            if !secret_names.iter().any(|n| n == s) {
                errs.push(&p, format!("secret {s:?} is not declared (add a [secrets.{s}] table)"));
            } else if secrets.iter().any(|x| x == s) {
                errs.push(&p, format!("secret {s:?} is listed twice"));
            } else {
                secrets.push(s.to_string());
            }
        }
        let mut databases: Vec<String> = Vec::new();
        for (p, d) in f.strs("databases", errs) {
            if !db_names.iter().any(|n| n == d) {
                errs.push(
                    &p,
                    format!("database {d:?} is not declared (add a [databases.{d}] table)"),
                );
            } else if databases.iter().any(|x| x == d) {
                errs.push(&p, format!("database {d:?} is listed twice"));
            } else {
                databases.push(d.to_string());
            }
        }
        if let Some(n) = name {
            agents.push(Agent {
                name: n.to_string(),
                secrets,
                databases,
            });
        }
    }
    agents
}
