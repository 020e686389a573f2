//! airlock's configuration: loads `airlock.toml` and validates it into the decision core's
//! types ([`Policy`], [`SecretIndex`]) plus the gateway's own settings.
//!
//! The file is operator input, so the loader never panics on it and never stops at the first
//! problem: every error is collected and reported as `file:line: key.path: message`. Unknown
//! keys anywhere are errors, so a typo cannot silently turn a rule into a broader one.
//!
//! How it works: the text is parsed by the `toml` crate (syntax errors come from there, with
//! line and column), walked section by section (`raw` reads typed fields and records errors
//! under their key path), and each key path is then placed on a line by looking it up in a
//! second, span-preserving parse made with `toml_edit` (`locate`).
#![forbid(unsafe_code)]

mod addr;
mod approvals;
mod body;
mod cases;
mod cloud;
mod compat;
mod credentials;
mod databases;
mod error;
mod gateway;
mod locate;
mod messengers;
mod raw;
mod rules;
mod secrets;
mod selfhosted;
mod store;

use std::path::{Component, Path, PathBuf};

use airlock_core::inject::SecretIndex;
use airlock_core::policy::Policy;
use toml::Table;

pub use addr::{AddrRule, parse_duration};
pub use approvals::{
    ApprovalsConfig, ChannelsConfig, DEFAULT_MAX_HELD_PER_AGENT, DiscordConfig, PersonConfig, SecretRef, SlackConfig,
    TelegramConfig, WebexConfig, WebhookConfig,
};
pub use body::sql_class;
pub use cases::PolicyCase;
pub use cloud::{GchatConfig, TeamsConfig};
pub use compat::{DEFAULT_PROXY_URL, OneCliConfig};
pub use credentials::{AssumeRole, Aws, ClientAuth, Credential, CredentialKind, GithubApp, OAuth2};
pub use databases::{DatabaseConfig, DatabaseKind, DbChannelBinding, DbTls, is_loopback};
pub use error::{ConfigError, KeyPath, Located, Seg};
pub use gateway::{
    ConnTimeouts, DEFAULT_CONN_TIMEOUT, DEFAULT_CONTROL, DEFAULT_DATA_DIR, DEFAULT_DRAIN_TIMEOUT, DEFAULT_LISTEN,
    Gateway,
};
pub use messengers::{MatrixConfig, SignalConfig, WhatsAppConfig};
pub use rules::{DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS};
pub use secrets::Agent;
pub use selfhosted::{DEFAULT_NTFY_PRIORITY, EmailConfig, MattermostConfig, NtfyConfig, SmtpSecurity};
pub use store::{StoreConfig, check_store_url};

use error::Errors;
use locate::{Locator, line_col};
use raw::Fields;

/// A fully commented example `airlock.toml` (written by `airlock init`). It parses.
pub const EXAMPLE: &str = include_str!("example.toml");

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file loaded, as named to the loader.
    pub path: PathBuf,
    /// Its directory: relative paths in the file are resolved against it.
    pub dir: PathBuf,
    pub gateway: Gateway,
    pub agents: Vec<Agent>,
    pub secrets: SecretIndex,
    /// The secrets the gateway mints or refreshes itself (OAuth2 connections, GitHub Apps).
    pub credentials: Vec<Credential>,
    pub policy: Policy,
    /// `[databases.*]`.
    pub databases: Vec<DatabaseConfig>,
    /// The rules with `databases = [...]`, with the same default: statements are decided by
    /// these alone, HTTP requests by `policy` alone.
    pub database_policy: Policy,
    /// `[people.*]`: who may approve, with which roles, reachable where.
    pub people: Vec<PersonConfig>,
    /// `[channels.*]`: where approval cards are sent.
    pub channels: ChannelsConfig,
    /// `[approvals]`.
    pub approvals: ApprovalsConfig,
    /// `[store]`: the database (default: SQLite in `gateway.data_dir`).
    pub store: StoreConfig,
    /// `[[tests]]`: the policy's own cases, run by `airlock policy check`.
    pub tests: Vec<PolicyCase>,
    /// `[compat.onecli]`: the OneCLI-compatible API, when configured.
    pub onecli: Option<OneCliConfig>,
}

const TOP_KEYS: &[&str] = &[
    "gateway",
    "agents",
    "secrets",
    "rules",
    "people",
    "channels",
    "approvals",
    "store",
    "tests",
    "compat",
    "databases",
];

impl Config {
    /// Reads and validates the file at `path`, and checks that each `upstream_ca` file exists.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::load_source(&src, path)
    }

    /// [`Config::load`] of contents already read from `path` (a reload hashes the same bytes
    /// it loads).
    pub fn load_source(src: &str, path: &Path) -> Result<Config, ConfigError> {
        let config = Self::parse(src, path)?;
        let mut errs = Errors::default();
        let at = KeyPath::root().key("gateway").key("upstream_ca");
        for (i, ca) in config.gateway.upstream_ca.iter().enumerate() {
            let problem = match std::fs::metadata(ca) {
                Ok(m) if m.is_file() => continue,
                Ok(_) => "is not a file".to_string(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
                Err(e) => format!("cannot be read: {e}"),
            };
            errs.push(&at.index(i), format!("{} {problem}", ca.display()));
        }
        if errs.list.is_empty() {
            Ok(config)
        } else {
            Err(place(errs, src, path))
        }
    }

    /// Validates `src` as the contents of `path` (named in messages; its directory resolves
    /// relative paths). Touches no files: `upstream_ca` existence is checked by [`Config::load`].
    pub fn parse(src: &str, path: &Path) -> Result<Config, ConfigError> {
        let table: Table = toml::from_str(src).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(src, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };

        let mut errs = Errors::default();
        let root = Fields::new(&table, KeyPath::root(), TOP_KEYS, &mut errs);
        let mut gateway = gateway::read(root.table("gateway", &mut errs), &dir, &mut errs);
        gateway.data_dir = tidy(&gateway.data_dir);
        gateway.upstream_ca = gateway.upstream_ca.iter().map(|p| tidy(p)).collect();
        let (decls, secret_names, credentials) = secrets::read_secrets(root.table("secrets", &mut errs), &mut errs);
        let (databases, db_names) = databases::read(root.table("databases", &mut errs), &dir, &mut errs);
        let agents = secrets::read_agents(root.value("agents"), &secret_names, &db_names, &mut errs);
        let agent_names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
        let known = rules::Known {
            agents: &agent_names,
            databases: &db_names,
        };
        let rules = rules::read(root.value("rules"), &known, &mut errs);
        let people = approvals::read_people(root.table("people", &mut errs), &mut errs);
        let channels = approvals::read_channels(root.table("channels", &mut errs), &mut errs);
        let approvals = approvals::read_approvals(root.table("approvals", &mut errs), &channels, &mut errs);
        let store = store::read(root.table("store", &mut errs), &mut errs);
        let rule_names: Vec<String> = rules.iter().map(|(_, r, _)| r.name.clone()).collect();
        let mut tests = cases::read(root.value("tests"), &rule_names, &mut errs);
        let onecli = compat::read(root.table("compat", &mut errs), &people, &mut errs);
        // With people configured, an approver role nobody holds is a mistake (a typo, usually):
        // such a rule could never be approved.
        if !people.is_empty() {
            for (i, r, _) in &rules {
                for role in r.approval.iter().flat_map(|a| &a.approvers) {
                    if !people.iter().any(|p| p.roles.contains(role)) {
                        errs.push(
                            &KeyPath::root().key("rules").index(*i).key("approvers"),
                            format!("no person holds the role {role:?} (see [people.*] roles)"),
                        );
                    }
                }
            }
        }

        if !errs.list.is_empty() {
            return Err(place(errs, src, path));
        }
        let (db_rules, rules): (Vec<_>, Vec<_>) = rules.into_iter().partition(|(_, _, db)| *db);
        let policy = Policy::new(gateway.default, rules.into_iter().map(|(_, r, _)| r).collect());
        let database_policy = Policy::new(gateway.default, db_rules.into_iter().map(|(_, r, _)| r).collect());
        let locator = Locator::new(src);
        for t in &mut tests {
            t.line = locator.line(&t.path);
        }
        Ok(Config {
            path: path.to_path_buf(),
            dir,
            gateway,
            agents,
            secrets: SecretIndex::new(decls),
            credentials,
            policy,
            databases,
            database_policy,
            people,
            channels,
            approvals,
            store,
            tests,
            onecli,
        })
    }

    /// The credential the gateway obtains for secret `name`, when it is not a static one.
    pub fn credential(&self, name: &str) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.name == name)
    }

    /// The `[[agents]]` entry for agent `name`: the one of that exact name, else the glob
    /// (`"ag-*"`) with the longest prefix matching it.
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name).or_else(|| {
            self.agents
                .iter()
                .filter(|a| a.glob_matches(name))
                .max_by_key(|a| a.name.len())
        })
    }
}

/// Parses `data` as a configuration when it is UTF-8, ignoring the outcome (a fuzz target:
/// the loader must not panic on any input).
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(src) = std::str::from_utf8(data) {
        // Rendering the errors is part of the contract too.
        let _ = Config::parse(src, Path::new("fuzz.toml")).map_err(|e| e.to_string());
    }
}

/// `./a/./b` → `a/b`: drops `.` components (always safe; `..` is kept).
fn tidy(p: &Path) -> PathBuf {
    let out: PathBuf = p.components().filter(|c| !matches!(c, Component::CurDir)).collect();
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// Gives each collected error its line, in file order.
fn place(errs: Errors, src: &str, path: &Path) -> ConfigError {
    let locator = Locator::new(src);
    let mut errors: Vec<Located> = errs
        .list
        .into_iter()
        .map(|(key, message)| Located {
            file: path.to_path_buf(),
            line: locator.line(&key),
            key,
            message,
        })
        .collect();
    errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    ConfigError::Invalid { errors }
}
