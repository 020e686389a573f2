//! The `[gateway]` table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_core::policy::Action;
use toml::Table;

use crate::addr::AddrRule;
use crate::error::{Errors, KeyPath};
use crate::raw::Fields;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:3128";
pub const DEFAULT_CONTROL: &str = "127.0.0.1:3129";
pub const DEFAULT_DATA_DIR: &str = "./airlock-data";

/// Listener and dialing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The proxy listener agents connect to.
    pub listen: SocketAddr,
    /// The control plane (dashboard, callbacks, API): a separate listener.
    pub control: SocketAddr,
    /// What happens to a request no rule matches: deny or allow.
    pub default: Action,
    /// Resolved against the config file's directory.
    pub data_dir: PathBuf,
    /// Private/loopback destinations that may be dialed despite the dial-time address check.
    pub allow_private: Vec<AddrRule>,
    /// Extra PEM files trusted for upstream TLS, resolved against the config file's directory.
    pub upstream_ca: Vec<PathBuf>,
    /// How long an agent's connection may stall before it is closed.
    pub timeouts: ConnTimeouts,
    /// `drain_timeout`: on SIGTERM/SIGINT, how long requests in flight may take to finish
    /// before the gateway stops anyway.
    pub drain_timeout: Duration,
    /// `postgres_listen`: the PostgreSQL listener for `[databases.*]` of kind "postgres" (off
    /// when absent).
    pub postgres_listen: Option<SocketAddr>,
}

/// Time limits on agents' connections, so a stalled or slow one cannot hold a descriptor
/// and a task forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTimeouts {
    /// `handshake_timeout`: a new tunnel's first bytes and its whole TLS handshake.
    pub handshake: Duration,
    /// `header_timeout`: each request head, from when the connection is ready for it. An
    /// HTTP/2 connection is pinged at least this often and closed when a ping goes unanswered
    /// this long (a peer stalled in the middle of a head cannot answer).
    pub header: Duration,
    /// `idle_timeout`: a connection with no request in flight (before its first request,
    /// between requests, an idle HTTP/2 connection) is closed.
    pub idle: Duration,
}

/// The default of each connection time limit.
pub const DEFAULT_CONN_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ConnTimeouts {
    fn default() -> Self {
        ConnTimeouts {
            handshake: DEFAULT_CONN_TIMEOUT,
            header: DEFAULT_CONN_TIMEOUT,
            idle: DEFAULT_CONN_TIMEOUT,
        }
    }
}

/// The default of `gateway.drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Longer limits would let a stalled connection live for most of a day.
const MAX_CONN_TIMEOUT_SECS: u64 = 3600;

impl Gateway {
    /// Whether some `allow_private` entry admits dialing `addr`.
    pub fn private_allowed(&self, addr: SocketAddr) -> bool {
        self.allow_private.iter().any(|r| r.allows(addr))
    }
}

const KEYS: &[&str] = &[
    "listen",
    "control",
    "default",
    "data_dir",
    "allow_private",
    "upstream_ca",
    "handshake_timeout",
    "header_timeout",
    "idle_timeout",
    "drain_timeout",
    "postgres_listen",
];

/// A time limit: a duration from 1s to 1h, absent → `default`.
fn conn_timeout(f: &Fields<'_>, key: &str, default: Duration, errs: &mut Errors) -> Duration {
    match crate::rules::duration(f, key, errs) {
        Some(secs) if secs <= MAX_CONN_TIMEOUT_SECS => Duration::from_secs(secs),
        Some(_) => {
            errs.push(&f.at(key), "must be at most 1h");
            default
        }
        None => default,
    }
}

fn socket_addr(f: &Fields<'_>, key: &str, default: &str, errs: &mut Errors) -> SocketAddr {
    let fallback = SocketAddr::from(([127, 0, 0, 1], 0));
    let s = f.str(key, errs).unwrap_or(default);
    match s.trim().parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            errs.push(
                &f.at(key),
                format!("bad address {s:?}: expected IP:PORT such as \"{default}\" or \"[::1]:3128\""),
            );
            default.parse().unwrap_or(fallback)
        }
    }
}

/// Reads `[gateway]` (absent → all defaults). `dir` resolves relative paths.
pub(crate) fn read(table: Option<&Table>, dir: &Path, errs: &mut Errors) -> Gateway {
    let empty = Table::new();
    let f = Fields::new(table.unwrap_or(&empty), KeyPath::root().key("gateway"), KEYS, errs);

    let listen = socket_addr(&f, "listen", DEFAULT_LISTEN, errs);
    let control = socket_addr(&f, "control", DEFAULT_CONTROL, errs);
    // Port 0 asks the OS for a free port, so two port-0 listeners never collide.
    if listen == control && listen.port() != 0 {
        errs.push(
            &f.at("control"),
            format!("{control} is also gateway.listen; the two listeners need different addresses"),
        );
    }

    let default = match f.str("default", errs) {
        None | Some("deny") => Action::Deny,
        Some("allow") => Action::Allow,
        Some("approve") => {
            errs.push(
                &f.at("default"),
                "the default must be \"deny\" or \"allow\" (approval needs a rule naming approvers)",
            );
            Action::Deny
        }
        Some(other) => {
            errs.push(
                &f.at("default"),
                format!("unknown action {other:?} (expected deny or allow)"),
            );
            Action::Deny
        }
    };

    let data_dir = match f.str("data_dir", errs) {
        Some("") => {
            errs.push(&f.at("data_dir"), "must not be empty");
            dir.join(DEFAULT_DATA_DIR)
        }
        Some(p) => dir.join(p),
        None => dir.join(DEFAULT_DATA_DIR),
    };

    let mut allow_private = Vec::new();
    for (path, s) in f.strs("allow_private", errs) {
        match AddrRule::parse(s) {
            Ok(r) => allow_private.push(r),
            Err(e) => errs.push(&path, e),
        }
    }

    let mut upstream_ca = Vec::new();
    for (path, s) in f.strs("upstream_ca", errs) {
        if s.is_empty() {
            errs.push(&path, "must be a path to a PEM file");
        }
        upstream_ca.push(dir.join(s));
    }

    let timeouts = ConnTimeouts {
        handshake: conn_timeout(&f, "handshake_timeout", DEFAULT_CONN_TIMEOUT, errs),
        header: conn_timeout(&f, "header_timeout", DEFAULT_CONN_TIMEOUT, errs),
        idle: conn_timeout(&f, "idle_timeout", DEFAULT_CONN_TIMEOUT, errs),
    };
    let drain_timeout = conn_timeout(&f, "drain_timeout", DEFAULT_DRAIN_TIMEOUT, errs);
    let postgres_listen = f
        .has("postgres_listen")
        .then(|| socket_addr(&f, "postgres_listen", "127.0.0.1:5433", errs));
    if let Some(pg) = postgres_listen
        && pg.port() != 0
        && (pg == listen || pg == control)
    {
        errs.push(
            &f.at("postgres_listen"),
            format!("{pg} is already another gateway listener"),
        );
    }

    Gateway {
        listen,
        control,
        default,
        data_dir,
        allow_private,
        upstream_ca,
        timeouts,
        drain_timeout,
        postgres_listen,
    }
}
