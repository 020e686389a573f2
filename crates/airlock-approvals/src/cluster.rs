//! The hub's background work, which is what lets replicas share approvals:
//!
//! - **changes**: the store's notifications (PostgreSQL `LISTEN`) tell the holder of an approval
//!   that a vote counted or a decision was made elsewhere; after a lost connection, everything
//!   held is re-read.
//! - **upkeep**, every [`TICK`]: the polling fallback (held approvals decided meanwhile), the
//!   grants copy, and every third of a lease: renew this replica's lease, abandon what dead
//!   replicas held, expire what is overdue.
//! - **feeds**: pull-based channels (Telegram `getUpdates`, Slack Socket Mode) run on exactly one
//!   replica, the holder of the store's feed lock, and move to a survivor when it dies.

use std::sync::Arc;
use std::time::Duration;

use airlock_channels::{Card, Click, Status};
use airlock_store::{ApprovalRow, Heard, Listener, StoreError};
use tokio::sync::{mpsc, watch};

use crate::{Hub, fanout, now_ms, view};

/// How often held approvals are polled, grants reloaded and the feed lock checked.
const TICK: Duration = Duration::from_secs(1);

/// The feed lock's key: "airlock" and 2 (1 serializes audit appenders).
const FEED_LOCK: i64 = 0x6169_726c_6f63_6b02;

pub(crate) fn spawn(hub: &Hub, listener: Listener) {
    tokio::spawn(changes(hub.clone(), listener));
    tokio::spawn(upkeep(hub.clone()));
    let (tx, rx) = mpsc::channel::<Click>(256);
    tokio::spawn(feeds(hub.clone(), tx));
    tokio::spawn(clicks(hub.clone(), rx));
}

/// Resolves once the hub shuts down.
async fn stopped(hub: &Hub) {
    let mut rx = hub.inner.shutdown.subscribe();
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn changes(hub: Hub, mut listener: Listener) {
    loop {
        let heard = tokio::select! {
            h = listener.recv() => h,
            _ = stopped(&hub) => return,
        };
        match heard {
            Ok(Heard::Topic(topic)) => {
                if let Some(id) = airlock_store::approval_of(&topic) {
                    let (hub, id) = (hub.clone(), id.to_string());
                    // Off the listening loop: a slow read never delays the next notification.
                    tokio::spawn(async move { hub.changed(&id).await });
                } else if topic == airlock_store::GRANTS
                    && let Err(e) = hub.reload_grants().await
                {
                    tracing::warn!(error = %e, "could not reload grants");
                }
            }
            Ok(Heard::Gap) => {
                tracing::warn!("lost the store's notifications for a moment; re-reading held approvals");
                hub.poll_held().await;
                let _ = hub.reload_grants().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "store notifications unavailable; polling meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stopped(&hub) => return,
                }
            }
        }
    }
}

async fn upkeep(hub: Hub) {
    let started = now_ms() as i64;
    let lease = hub.inner.lease;
    let renew_every = (lease.as_millis() as u64 / 3 / TICK.as_millis() as u64).max(1);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stopped(&hub) => return,
        }
        ticks += 1;
        hub.poll_held().await;
        if hub.inner.store.is_shared()
            && let Err(e) = hub.reload_grants().await
        {
            tracing::warn!(error = %e, "could not reload grants");
        }
        if !ticks.is_multiple_of(renew_every) {
            continue;
        }
        let now = now_ms();
        let expires = now as i64 + lease.as_millis() as i64;
        match hub
            .inner
            .store
            .replica_alive(&hub.inner.replica, started, expires)
            .await
        {
            Ok(()) => hub.inner.health.renewed(expires as u64),
            Err(e) => tracing::warn!(error = %e, "could not renew this replica's lease"),
        }
        if let Err(e) = hub.sweep(now, false).await {
            tracing::warn!(error = %e, "could not look for abandoned approvals");
        }
    }
}

impl Hub {
    /// The polling fallback: applies the decisions of held approvals that no notification
    /// announced (or that were announced while this replica could not hear).
    async fn poll_held(&self) {
        let ids: Vec<String> = match self.inner.live.lock() {
            Ok(m) => m.iter().filter(|(_, l)| !l.closed).map(|(id, _)| id.clone()).collect(),
            Err(_) => return,
        };
        match self.inner.store.decided_among(&ids).await {
            Ok(rows) => {
                for row in rows {
                    if let Err(e) = self.refresh(&row.id).await {
                        tracing::warn!(approval = %row.id, error = %e, "could not apply a decision");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not poll held approvals"),
        }
    }

    /// Closes what nobody will decide: approvals held by replicas whose lease ran out (on an
    /// embedded store, at start: everything a previous run left pending), and approvals a live
    /// holder failed to expire a lease past their deadline.
    pub(crate) async fn sweep(&self, now: u64, at_start: bool) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let orphans = if store.is_shared() {
            store.orphaned_approvals(now as i64).await?
        } else if at_start {
            // One gateway owns an embedded store: at its start, whatever is pending was held by
            // a previous run.
            store.list_approvals(Some("pending"), i64::MAX).await?
        } else {
            Vec::new()
        };
        for row in orphans {
            let status = Status::Abandoned { at_ms: now };
            self.close_stored(
                row,
                status,
                "the gateway holding this request stopped; it is never forwarded",
            )
            .await?;
        }
        let grace = self.inner.lease.as_millis() as i64;
        for row in store.overdue_approvals(now as i64 - grace).await? {
            let status = Status::Expired { at_ms: now };
            self.close_stored(row, status, "expired without a decision").await?;
        }
        Ok(())
    }

    /// Closes a stored approval nobody else will close, and updates the cards recorded for it.
    async fn close_stored(&self, row: ApprovalRow, status: Status, reason: &str) -> Result<(), StoreError> {
        let Ok(card) = serde_json::from_slice::<Card>(&row.card) else {
            tracing::warn!(approval = %row.id, "a stored approval has an unreadable card; left alone");
            return Ok(());
        };
        let json = serde_json::to_vec(&status).unwrap_or_default();
        if !self
            .inner
            .store
            .close_approval(&row.id, status.name(), now_ms() as i64, &json)
            .await?
        {
            return Ok(());
        }
        self.audit(crate::event(
            "approval",
            &row.agent,
            &row.host,
            status.name(),
            reason,
            serde_json::json!({ "approval": row.id, "replica": row.replica, "detail": view::status_text(&status) }),
        ));
        // An approval this replica holds itself (one it failed to expire) is released now, on
        // any backend, as any other change; otherwise the dashboards are told.
        if self.with_live(&row.id, |_| ()).is_some() {
            self.changed(&row.id).await;
        } else {
            self.announce(&row.id, status.name());
        }
        fanout::update_stored(self.clone(), row.id, Arc::new(card), status);
        Ok(())
    }
}

/// Runs the pull-based channels while this replica holds the feed lock. A holder that cannot
/// reach the store lets go (and stops reading) before anyone else can take over.
async fn feeds(hub: Hub, clicks: mpsc::Sender<Click>) {
    let mut lock = hub.inner.store.exclusive(FEED_LOCK);
    let mut reading: Option<watch::Sender<bool>> = None;
    loop {
        let held = lock.hold().await;
        match (held, reading.is_some()) {
            (true, false) => {
                let (stop, rx) = watch::channel(false);
                for ch in &hub.inner.channels {
                    ch.clone().start(clicks.clone(), rx.clone());
                }
                reading = Some(stop);
                if hub.inner.store.is_shared() {
                    tracing::info!(replica = %hub.inner.replica, "this replica now reads the platforms' feeds");
                }
            }
            (false, true) => {
                if let Some(stop) = reading.take() {
                    let _ = stop.send(true);
                }
                tracing::warn!(replica = %hub.inner.replica, "lost the feed lock; stopped reading the platforms' feeds");
            }
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stopped(&hub) => break,
        }
    }
    if let Some(stop) = reading.take() {
        let _ = stop.send(true);
    }
    lock.release().await;
}

async fn clicks(hub: Hub, mut rx: mpsc::Receiver<Click>) {
    while let Some(click) = rx.recv().await {
        let h = hub.clone();
        // Each click on its own task: a slow acknowledgement never delays the next vote.
        tokio::spawn(async move {
            let reply = h.click(&click).await;
            if let Some(ch) = h.channel(click.channel)
                && let Err(e) = ch.acknowledge(&click, &reply).await
            {
                tracing::warn!(channel = click.channel, error = %e, "could not answer a click");
            }
        });
    }
}
