//! The `[gateway]` table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
}

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
];

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

    Gateway {
        listen,
        control,
        default,
        data_dir,
        allow_private,
        upstream_ca,
    }
}
