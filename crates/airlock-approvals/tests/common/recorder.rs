//! An in-process channel for the hub's tests: records every card sent and every update, can
//! fail or hold back sends, and counts the replicas reading its (pretend) pull-based feed.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_channels::{BoxFuture, Buttons, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

/// Replicas reading a feed at once: now, and the most ever.
#[derive(Default)]
pub struct Feed {
    pub now: AtomicUsize,
    pub most: AtomicUsize,
}

#[derive(Default)]
pub struct Recorder {
    pub sent: Mutex<Vec<(String, Card, Buttons)>>,
    pub updates: Mutex<Vec<(String, Status)>>,
    pub fail: bool,
    /// Sends wait for a permit of this before completing (to land after a vote).
    pub gate: Option<Arc<Semaphore>>,
    pub changed: Notify,
    /// Shared by every replica's recorder: `start` counts its readers.
    pub feed: Arc<Feed>,
    /// Whether this recorder's replica reads the feed now.
    pub reading_here: AtomicUsize,
}

impl Channel for Recorder {
    fn name(&self) -> &'static str {
        "rec"
    }
    fn send<'a>(
        &'a self,
        card: &'a Card,
        b: &'a Buttons,
        to: &'a str,
    ) -> BoxFuture<'a, Result<MessageRef, ChannelError>> {
        Box::pin(async move {
            if let Some(g) = &self.gate {
                g.acquire().await.unwrap().forget();
            }
            if self.fail {
                return Err(ChannelError::Transport {
                    channel: "rec",
                    detail: "down".into(),
                });
            }
            self.sent
                .lock()
                .unwrap()
                .push((to.to_string(), card.clone(), b.clone()));
            self.changed.notify_waiters();
            Ok(MessageRef(format!("{to}/{}", card.id)))
        })
    }
    fn update<'a>(
        &'a self,
        _c: &'a Card,
        s: &'a Status,
        _b: Option<&'a Buttons>,
        m: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            self.updates.lock().unwrap().push((m.0.clone(), s.clone()));
            self.changed.notify_waiters();
            Ok(())
        })
    }
    fn acknowledge<'a>(&'a self, _c: &'a Click, _r: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async { Ok(()) })
    }
    /// A pull-based feed: "reads" until told to stop.
    fn start(self: Arc<Self>, _clicks: mpsc::Sender<Click>, mut shutdown: watch::Receiver<bool>) {
        let now = self.feed.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.feed.most.fetch_max(now, Ordering::SeqCst);
        self.reading_here.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|s| *s).await;
            self.feed.now.fetch_sub(1, Ordering::SeqCst);
            self.reading_here.fetch_sub(1, Ordering::SeqCst);
            self.changed.notify_waiters();
        });
    }
}

impl Recorder {
    pub async fn wait_for(&self, f: impl Fn(&Recorder) -> bool) {
        self.wait_until("the expected channel calls", f).await;
    }

    /// Waits until `f` holds: checked on every call this channel records, and every 100 ms
    /// for conditions that change elsewhere (another replica's channel, a hub's grants).
    pub async fn wait_until(&self, what: &str, f: impl Fn(&Recorder) -> bool) {
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                let n = self.changed.notified();
                if f(self) {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), n).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }
}
