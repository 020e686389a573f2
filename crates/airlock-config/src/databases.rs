//! `[databases.*]`: databases agents reach through airlock's database listener.
//!
//! The shape is protocol-neutral (`kind` names the wire protocol) so a second protocol plugs in
//! as another `DatabaseKind`. The real password is a reference (`vault:NAME` / `env:NAME`),
//! never a value in the file: a vault entry referenced here needs no `[secrets.NAME]` block,
//! because it is never injected into HTTP.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use toml::Table;

use crate::approvals::{SecretRef, secret_ref};
use crate::error::{Errors, KeyPath};
use crate::raw::{Fields, as_table, single_line, valid_name};

/// The wire protocol of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
}

impl DatabaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseKind::Postgres => "postgres",
        }
    }
}

/// How airlock's own connection to the database is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbTls {
    /// TLS, the certificate checked against the CA and the upstream's host name (the default).
    VerifyFull,
    /// TLS without checking who answers: protects against passive eavesdroppers only.
    Require,
    /// No TLS: accepted only toward this machine (loopback).
    Disable,
}

/// Whether airlock's SCRAM login binds itself to the TLS connection (SCRAM-SHA-256-PLUS with
/// `tls-server-end-point`), as libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbChannelBinding {
    /// Bound when the server offers it (over TLS it always does, PostgreSQL 11 and later).
    Prefer,
    /// Bound or refused: a server that does not offer it is not logged in to.
    Require,
    /// Never bound (plain SCRAM-SHA-256).
    Disable,
}

/// One `[databases.NAME]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The entry's name: what agents ask for as their database and rules name.
    pub name: String,
    pub kind: DatabaseKind,
    /// Host (name or IP literal) and port airlock dials.
    pub host: String,
    pub port: u16,
    /// The database name on the server.
    pub database: String,
    /// The role airlock logs in as.
    pub user: String,
    pub password: SecretRef,
    pub tls: DbTls,
    pub channel_binding: DbChannelBinding,
    /// Extra CA (PEM) trusted for the upstream, resolved against the config's directory.
    pub ca: Option<PathBuf>,
    /// What the agent holds instead of the password (inside a sandbox).
    pub placeholder: String,
}

const KEYS: &[&str] = &[
    "kind",
    "upstream",
    "database",
    "user",
    "password",
    "tls",
    "channel_binding",
    "ca",
    "placeholder",
];

/// `host:port` or `[v6]:port`; the port is required (no protocol default is assumed here).
fn upstream(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("bad upstream {s:?}: expected HOST:PORT, e.g. \"db.internal:5432\"");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let ok = !host.is_empty()
        && (host.parse::<IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !ok {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Whether `host` is this machine: the only place an unencrypted upstream is accepted.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A PostgreSQL identifier given in the file: one line, no NUL, not empty.
fn ident(f: &Fields<'_>, key: &str, errs: &mut Errors) -> Option<String> {
    let s = f.str(key, errs);
    match s {
        None if !f.has(key) => errs.push(&f.at(key), format!("required: the {key} name on the server")),
        Some(v) if v.is_empty() || v.len() > 63 || !single_line(v) => {
            errs.push(&f.at(key), "must be 1 to 63 bytes on one line");
        }
        _ => {}
    }
    s.map(str::to_string)
}

fn database(name: &str, t: &Table, path: KeyPath, dir: &Path, errs: &mut Errors) -> Option<DatabaseConfig> {
    let before = errs.list.len();
    if !valid_name(name) {
        errs.push(&path, "a database name is 1 to 64 of A-Z a-z 0-9 . _ -");
    }
    let f = Fields::new(t, path, KEYS, errs);
    let kind = match f.str("kind", errs) {
        Some("postgres") => Some(DatabaseKind::Postgres),
        None if !f.has("kind") => {
            errs.push(&f.at("kind"), "required: the wire protocol (supported: \"postgres\")");
            None
        }
        None => None,
        Some(other) => {
            errs.push(
                &f.at("kind"),
                format!("unknown kind {other:?} (supported: \"postgres\")"),
            );
            None
        }
    };
    let up = match f.str("upstream", errs) {
        None if !f.has("upstream") => {
            errs.push(&f.at("upstream"), "required: HOST:PORT of the database server");
            None
        }
        None => None,
        Some(s) => upstream(s).map_err(|e| errs.push(&f.at("upstream"), e)).ok(),
    };
    let db = ident(&f, "database", errs);
    let user = ident(&f, "user", errs);
    let password = secret_ref(&f, "password", true, errs);
    let tls = match f.str("tls", errs) {
        None | Some("verify-full") => DbTls::VerifyFull,
        Some("require") => DbTls::Require,
        Some("disable") => DbTls::Disable,
        Some(other) => {
            errs.push(
                &f.at("tls"),
                format!("unknown tls {other:?} (expected \"verify-full\", \"require\" or \"disable\")"),
            );
            DbTls::VerifyFull
        }
    };
    if tls == DbTls::Disable
        && let Some((host, _)) = &up
        && !is_loopback(host)
    {
        errs.push(
            &f.at("tls"),
            format!("\"disable\" is allowed only toward this machine; {host} is not a loopback address"),
        );
    }
    let channel_binding = match f.str("channel_binding", errs) {
        None | Some("prefer") => DbChannelBinding::Prefer,
        Some("require") if tls == DbTls::Disable => {
            errs.push(
                &f.at("channel_binding"),
                "\"require\" needs TLS toward the database; tls = \"disable\" has none to bind to",
            );
            DbChannelBinding::Require
        }
        Some("require") => DbChannelBinding::Require,
        Some("disable") => DbChannelBinding::Disable,
        Some(other) => {
            errs.push(
                &f.at("channel_binding"),
                format!("unknown channel_binding {other:?} (expected \"prefer\", \"require\" or \"disable\")"),
            );
            DbChannelBinding::Prefer
        }
    };
    let ca = match f.str("ca", errs) {
        Some("") => {
            errs.push(&f.at("ca"), "must be a path to a PEM file");
            None
        }
        Some(_) if tls == DbTls::Disable => {
            errs.push(&f.at("ca"), "a CA has no use with tls = \"disable\"");
            None
        }
        Some(p) => Some(dir.join(p)),
        None => None,
    };
    let placeholder = match f.str("placeholder", errs) {
        Some(p) if p.len() < 8 || !p.bytes().all(|b| b.is_ascii_graphic()) => {
            errs.push(
                &f.at("placeholder"),
                "must be at least 8 printable ASCII characters without spaces",
            );
            None
        }
        Some(p) => Some(p.to_string()),
        None => Some(format!("airlock-db-{name}")),
    };
    if errs.list.len() > before {
        return None;
    }
    let (host, port) = up?;
    Some(DatabaseConfig {
        name: name.to_string(),
        kind: kind?,
        host,
        port,
        database: db?,
        user: user?,
        password: password?,
        tls,
        channel_binding,
        ca,
        placeholder: placeholder?,
    })
}

/// Reads `[databases]`; every declared name is returned (valid or not) so references to a
/// broken entry are not reported twice.
pub(crate) fn read(table: Option<&Table>, dir: &Path, errs: &mut Errors) -> (Vec<DatabaseConfig>, Vec<String>) {
    let root = KeyPath::root().key("databases");
    let mut out: Vec<DatabaseConfig> = Vec::new();
    let mut names = Vec::new();
    for (name, v) in table.into_iter().flatten() {
        names.push(name.clone());
        let path = root.key(name);
        if let Some(t) = as_table(v, &path, errs)
            && let Some(d) = database(name, t, path.clone(), dir, errs)
        {
            if let Some(other) = out.iter().find(|o| o.placeholder == d.placeholder) {
                errs.push(
                    &path.key("placeholder"),
                    format!("same placeholder as database {:?}", other.name),
                );
            }
            out.push(d);
        }
    }
    (out, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        assert_eq!(upstream("db.internal:5432"), Ok(("db.internal".into(), 5432)));
        assert_eq!(upstream("[::1]:5433"), Ok(("::1".into(), 5433)));
        assert!(upstream("db.internal").is_err());
        assert!(upstream("db:0").is_err());
        assert!(upstream(":5432").is_err());
        assert!(upstream("postgres://db:5432").is_err());
        assert!(is_loopback("127.0.0.2") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
