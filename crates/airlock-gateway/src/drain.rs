//! Graceful stop: once draining, the listeners stop accepting, open connections finish the
//! requests they carry and close, and requests held for approval are abandoned (503 with
//! `Retry-After`, never forwarded). The binary waits for [`Drain::idle`] within its
//! `gateway.drain_timeout`.

use tokio::sync::watch;

/// Seconds an agent whose held request was abandoned by a stopping gateway is told to wait
/// before asking again (a restarted gateway, or another replica, answers it).
pub const RETRY_AFTER_SECS: u64 = 5;

pub struct Drain {
    stop: watch::Sender<bool>,
    open: watch::Sender<usize>,
    /// Listeners still accepting (each accept loop counts itself until its listener is closed).
    listening: watch::Sender<usize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            stop: watch::Sender::new(false),
            open: watch::Sender::new(0),
            listening: watch::Sender::new(0),
        }
    }
}

impl Drain {
    /// Starts draining (idempotent).
    pub fn begin(&self) {
        self.stop.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.stop.borrow()
    }

    /// Completes once draining began.
    pub async fn draining(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Connections (agents' connections and their tunnels) open now.
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Completes when no connection is open.
    pub async fn idle(&self) {
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Counts a connection as open until the returned guard drops.
    pub(crate) fn track(&self) -> Open {
        self.open.send_modify(|n| *n += 1);
        Open(self.open.clone())
    }

    /// Counts a listener as accepting until the returned guard drops (after the listener).
    pub(crate) fn listen(&self) -> Open {
        self.listening.send_modify(|n| *n += 1);
        Open(self.listening.clone())
    }

    /// Completes once every listener is closed: from then on a new connection is refused.
    pub async fn closed(&self) {
        let mut rx = self.listening.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

pub(crate) struct Open(watch::Sender<usize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_open_connection() {
        let d = Drain::default();
        assert!(!d.is_draining());
        let (a, b) = (d.track(), d.track());
        assert_eq!(d.open(), 2);
        d.begin();
        d.draining().await;
        drop(a);
        assert_eq!(d.open(), 1);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), d.idle()).await;
        assert!(waited.is_err(), "idle while a connection is open");
        drop(b);
        d.idle().await;
        assert_eq!(d.open(), 0);
    }
}
