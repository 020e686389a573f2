//! The `[store]` table: where the gateway keeps its state (vault, audit log, approvals).

use toml::Table;

use crate::error::{Errors, KeyPath};
use crate::raw::Fields;

/// `[store]`. Without `url`, the SQLite file `airlock.db` in `gateway.data_dir` (the default).
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// A `postgres://` or `postgresql://` URL: every replica given it shares that database.
    pub url: Option<String>,
    /// `lease`: how long a replica that stops renewing its lease (killed, frozen, cut off) is
    /// still taken to be alive; then the others abandon the approvals it held. Seconds.
    pub lease_secs: u64,
    /// `timeout`: how long the gateway waits for a database connection, and for an audit commit,
    /// before it counts the store as unreachable and refuses requests (503). Seconds.
    pub timeout_secs: u64,
    /// `checkpoint_interval`: how often the audit log's head is signed (and the anchor file in
    /// the data directory rewritten) while new records arrive, besides every 1,000 records.
    /// Seconds; 0 turns the time cadence off.
    pub checkpoint_interval_secs: u64,
}

/// The default `[store] lease`.
pub const DEFAULT_LEASE_SECS: u64 = 10;
/// The default `[store] timeout`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 2;
/// The default `[store] checkpoint_interval`.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECS: u64 = 60;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            lease_secs: DEFAULT_LEASE_SECS,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            checkpoint_interval_secs: DEFAULT_CHECKPOINT_INTERVAL_SECS,
        }
    }
}

/// Shows the URL's scheme only: the rest may carry a password.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.url.as_deref().map(|u| match scheme(u) {
            Some(s) => format!("{s}://…"),
            None => "…".to_owned(),
        });
        f.debug_struct("StoreConfig")
            .field("url", &url)
            .field("lease_secs", &self.lease_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field("checkpoint_interval_secs", &self.checkpoint_interval_secs)
            .finish()
    }
}

/// The URL's scheme when it looks like one (so quoting it cannot quote a password).
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    let plausible =
        (1..=16).contains(&scheme.len()) && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    plausible.then_some(scheme)
}

/// Checks a store URL (from `[store] url` or `AIRLOCK_STORE_URL`). The message never quotes the
/// URL beyond its scheme.
pub fn check_store_url(url: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected a postgres:// or postgresql:// URL \
                            (without one, the SQLite file in gateway.data_dir is used)";
    match scheme(url) {
        Some("postgres" | "postgresql") => Ok(()),
        Some(other) => Err(format!("unsupported scheme {other:?}: {EXPECTED}")),
        None if url.is_empty() => Err(format!("must not be empty: {EXPECTED}")),
        None => Err(EXPECTED.to_owned()),
    }
}

/// Reads `[store]` (absent → the SQLite default).
pub(crate) fn read(table: Option<&Table>, errs: &mut Errors) -> StoreConfig {
    let Some(t) = table else {
        return StoreConfig::default();
    };
    let f = Fields::new(
        t,
        KeyPath::root().key("store"),
        &["url", "lease", "timeout", "checkpoint_interval"],
        errs,
    );
    let url = f.str("url", errs).and_then(|u| match check_store_url(u) {
        Ok(()) => Some(u.to_owned()),
        Err(problem) => {
            errs.push(&f.at("url"), problem);
            None
        }
    });
    let lease_secs = match t.contains_key("lease") {
        true => crate::rules::duration(&f, "lease", errs).unwrap_or(DEFAULT_LEASE_SECS),
        false => DEFAULT_LEASE_SECS,
    };
    let timeout_secs = match t.contains_key("timeout") {
        true => crate::rules::duration(&f, "timeout", errs)
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_TIMEOUT_SECS),
        false => DEFAULT_TIMEOUT_SECS,
    };
    let checkpoint_interval_secs = match t.contains_key("checkpoint_interval") {
        true => crate::rules::duration(&f, "checkpoint_interval", errs).unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_SECS),
        false => DEFAULT_CHECKPOINT_INTERVAL_SECS,
    };
    StoreConfig {
        url,
        lease_secs,
        timeout_secs,
        checkpoint_interval_secs,
    }
}
