//! What `airlock status` and `/readyz` say about this replica's approvals: each channel's last
//! delivery and last error (as already logged: channel errors never carry credentials), and
//! whether this replica's lease in the store is live.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Hub;

/// One channel, as seen from this replica since it started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelHealth {
    pub name: &'static str,
    /// When a card was last delivered or updated.
    pub last_ok_ms: Option<u64>,
    pub last_error_ms: Option<u64>,
    pub last_error: Option<String>,
}

pub(crate) struct Health {
    channels: Mutex<Vec<ChannelHealth>>,
    /// Until when the store holds this replica's lease (its last renewal that succeeded).
    lease_expires_ms: AtomicU64,
}

impl Health {
    pub(crate) fn new(names: impl Iterator<Item = &'static str>, lease_expires_ms: u64) -> Health {
        let channels = names
            .map(|name| ChannelHealth {
                name,
                last_ok_ms: None,
                last_error_ms: None,
                last_error: None,
            })
            .collect();
        Health {
            channels: Mutex::new(channels),
            lease_expires_ms: AtomicU64::new(lease_expires_ms),
        }
    }

    fn with(&self, channel: &str, f: impl FnOnce(&mut ChannelHealth)) {
        if let Ok(mut list) = self.channels.lock()
            && let Some(c) = list.iter_mut().find(|c| c.name == channel)
        {
            f(c);
        }
    }

    pub(crate) fn delivered(&self, channel: &str, now_ms: u64) {
        self.with(channel, |c| c.last_ok_ms = Some(now_ms));
    }

    pub(crate) fn failed(&self, channel: &str, now_ms: u64, error: &dyn std::fmt::Display) {
        let text = error.to_string();
        self.with(channel, |c| {
            c.last_error_ms = Some(now_ms);
            c.last_error = Some(text);
        });
    }

    pub(crate) fn renewed(&self, expires_ms: u64) {
        self.lease_expires_ms.store(expires_ms, Ordering::Relaxed);
    }
}

impl Hub {
    /// This replica's id in the store (random per start).
    pub fn replica_id(&self) -> &str {
        &self.inner.replica
    }

    /// Each configured channel's last delivery and last error on this replica.
    pub fn channel_health(&self) -> Vec<ChannelHealth> {
        self.inner.health.channels.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether the store still holds this replica's lease at `now_ms`. A lapsed lease means
    /// other replicas may abandon what this one holds: it should take no new requests. An
    /// embedded store has one gateway, whose lease cannot be taken over.
    pub fn lease_live(&self, now_ms: u64) -> bool {
        !self.inner.store.is_shared() || self.inner.health.lease_expires_ms.load(Ordering::Relaxed) > now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_delivery_and_error_are_kept_per_channel() {
        let h = Health::new(["slack", "telegram"].into_iter(), 10);
        h.delivered("slack", 5);
        h.failed("telegram", 6, &"telegram: the platform refused: chat not found");
        h.failed("unknown", 7, &"ignored");
        let list = h.channels.lock().unwrap().clone();
        assert_eq!(list[0].last_ok_ms, Some(5));
        assert_eq!(list[0].last_error, None);
        assert_eq!(list[1].last_error_ms, Some(6));
        assert_eq!(
            list[1].last_error.as_deref(),
            Some("telegram: the platform refused: chat not found")
        );
        h.renewed(20);
        assert_eq!(h.lease_expires_ms.load(Ordering::Relaxed), 20);
    }
}
