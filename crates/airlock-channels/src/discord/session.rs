//! The Gateway session kept in the store, so the replica that takes the reader over resumes
//! (op 6) instead of identifying afresh: Discord replays to a resumed session every event
//! dispatched after the sequence number it is given, and to a new session nothing.
//!
//! What is stored is the session id, the resume URL and a sequence number: never the token.
//! The number is a watermark, not the last one received: every click dispatched at or before
//! it has been applied by the hub (its [`crate::Done`] guard dropped). A reader that dies with
//! clicks in flight leaves the watermark below them, Discord replays them to the next reader,
//! and the hub counts a person's vote once: nothing lost, nothing applied twice.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::memory::{Memory, get_json, put_json};

pub(super) const KEY: &str = "discord/gateway-session";

/// A resumable session as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Saved {
    pub session_id: String,
    pub resume_url: String,
    pub seq: u64,
}

/// What the reader tells the persister, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Note {
    /// READY: a new session (generation `generation`) starting at `seq`.
    Ready {
        generation: u64,
        session_id: String,
        resume_url: String,
        seq: u64,
    },
    /// A dispatch with this sequence number was read; `click` when it was handed to the hub.
    Read { seq: u64, click: bool },
    /// The hub applied the click dispatched at `seq` in session `generation`.
    Applied { generation: u64, seq: u64 },
    /// The session cannot be resumed any more (op 9 not resumable, close codes 4007/4009).
    Forget,
}

/// Pure bookkeeping: which watermark the store should hold.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    session: Option<(String, String)>,
    generation: u64,
    /// The highest sequence number read in this session.
    seen: u64,
    /// Clicks handed to the hub and not applied yet.
    pending: BTreeSet<u64>,
}

impl Tracker {
    /// Starts from what the store held (the session this process will try to resume).
    pub(super) fn resuming(saved: &Saved) -> Tracker {
        Tracker {
            session: Some((saved.session_id.clone(), saved.resume_url.clone())),
            generation: 0,
            seen: saved.seq,
            pending: BTreeSet::new(),
        }
    }

    pub(super) fn note(&mut self, n: Note) {
        match n {
            Note::Ready {
                generation,
                session_id,
                resume_url,
                seq,
            } => {
                // Clicks of the old session still in flight cannot be replayed any more.
                self.session = Some((session_id, resume_url));
                self.generation = generation;
                self.seen = seq;
                self.pending.clear();
            }
            Note::Read { seq, click } => {
                self.seen = self.seen.max(seq);
                if click {
                    self.pending.insert(seq);
                }
            }
            Note::Applied { generation, seq } => {
                if generation == self.generation {
                    self.pending.remove(&seq);
                }
            }
            Note::Forget => {
                self.session = None;
                self.pending.clear();
                self.seen = 0;
            }
        }
    }

    /// What the store should hold now: the session and the highest sequence number at or
    /// below which every click was applied.
    pub(super) fn wanted(&self) -> Option<Saved> {
        let (id, url) = self.session.as_ref()?;
        let seq = match self.pending.first() {
            Some(p) => p.saturating_sub(1).min(self.seen),
            None => self.seen,
        };
        Some(Saved {
            session_id: id.clone(),
            resume_url: url.clone(),
            seq,
        })
    }
}

/// Reads the stored session; an unreadable store or value means "identify afresh".
pub(super) async fn load(memory: &dyn Memory) -> Option<Saved> {
    match get_json::<Saved>(memory, KEY).await {
        Ok(s) => s.filter(|s| !s.session_id.is_empty() && !s.resume_url.is_empty()),
        Err(e) => {
            tracing::warn!(error = %e, "discord gateway: the stored session cannot be read; identifying afresh");
            None
        }
    }
}

/// Writes what the tracker wants whenever it changes, until the reader stops: after that, a
/// late write could overwrite the session the next reader stored (a watermark left lower
/// only means a click replayed and counted once).
pub(super) async fn persist(
    memory: std::sync::Arc<dyn Memory>,
    mut tracker: Tracker,
    mut notes: mpsc::UnboundedReceiver<Note>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stored = tracker.wanted();
    while let Some(n) = notes.recv().await {
        tracker.note(n);
        // Everything already queued first: one write for a burst.
        while let Ok(n) = notes.try_recv() {
            tracker.note(n);
        }
        if *shutdown.borrow() {
            return;
        }
        let want = tracker.wanted();
        if want == stored {
            continue;
        }
        let r = match &want {
            Some(s) => put_json(&*memory, KEY, s).await,
            None => memory.remove(KEY).await,
        };
        match r {
            Ok(()) => stored = want,
            Err(e) => {
                tracing::warn!(error = %e, "discord gateway: the session was not stored; a takeover may identify afresh")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::Volatile;

    fn ready(generation: u64, seq: u64) -> Note {
        Note::Ready {
            generation,
            session_id: format!("s{generation}"),
            resume_url: "wss://gateway-us-east1-b.discord.gg".into(),
            seq,
        }
    }

    #[test]
    fn the_watermark_stays_below_clicks_not_applied_yet() {
        let mut t = Tracker::default();
        assert_eq!(t.wanted(), None, "no session, nothing to store");
        t.note(ready(1, 1));
        assert_eq!(t.wanted().unwrap().seq, 1);
        t.note(Note::Read { seq: 2, click: false });
        t.note(Note::Read { seq: 3, click: true });
        t.note(Note::Read { seq: 4, click: true });
        t.note(Note::Read { seq: 5, click: false });
        assert_eq!(t.wanted().unwrap().seq, 2, "3 is in flight: resume from 2 replays it");
        t.note(Note::Applied { generation: 1, seq: 4 });
        assert_eq!(t.wanted().unwrap().seq, 2, "3 still is");
        t.note(Note::Applied { generation: 1, seq: 3 });
        assert_eq!(t.wanted().unwrap().seq, 5, "all applied: everything read is done");
        // A click of an old session applied late changes nothing in the new one.
        t.note(Note::Read { seq: 6, click: true });
        t.note(ready(2, 1));
        t.note(Note::Read { seq: 2, click: true });
        t.note(Note::Applied { generation: 1, seq: 2 });
        let w = t.wanted().unwrap();
        assert_eq!((w.session_id.as_str(), w.seq), ("s2", 1));
        t.note(Note::Forget);
        assert_eq!(t.wanted(), None);
    }

    #[test]
    fn a_stored_session_resumes_from_its_watermark() {
        let saved = Saved {
            session_id: "abc".into(),
            resume_url: "wss://gateway.discord.gg".into(),
            seq: 41,
        };
        let mut t = Tracker::resuming(&saved);
        assert_eq!(t.wanted(), Some(saved.clone()));
        // Replayed after RESUME: only sequence numbers above the watermark.
        t.note(Note::Read { seq: 42, click: true });
        assert_eq!(t.wanted().unwrap().seq, 41);
        t.note(Note::Applied { generation: 0, seq: 42 });
        assert_eq!(t.wanted().unwrap().seq, 42);
        // What is stored names the session, never a token.
        let json = serde_json::to_string(&t.wanted()).unwrap();
        assert_eq!(
            json,
            r#"{"session_id":"abc","resume_url":"wss://gateway.discord.gg","seq":42}"#
        );
    }

    #[tokio::test]
    async fn the_persister_writes_changes_and_stops_with_the_reader() {
        let mem = Arc::new(Volatile::new());
        assert_eq!(load(&*mem).await, None);
        mem.put(KEY, b"not json").await.unwrap();
        assert_eq!(load(&*mem).await, None, "an unreadable value: identify afresh");
        mem.put(KEY, br#"{"session_id":"","resume_url":"wss://x","seq":1}"#)
            .await
            .unwrap();
        assert_eq!(load(&*mem).await, None, "no session id: identify afresh");

        let (tx, rx) = mpsc::unbounded_channel();
        let (_running, stopped) = watch::channel(false);
        let task = tokio::spawn(persist(mem.clone(), Tracker::default(), rx, stopped));
        tx.send(ready(1, 1)).unwrap();
        tx.send(Note::Read { seq: 2, click: true }).unwrap();
        tx.send(Note::Read { seq: 3, click: false }).unwrap();
        tx.send(Note::Forget).unwrap();
        tx.send(ready(2, 1)).unwrap();
        tx.send(Note::Read { seq: 2, click: true }).unwrap();
        tx.send(Note::Read { seq: 3, click: false }).unwrap();
        // The reader gone, the task ends once it wrote everything queued.
        drop(tx);
        task.await.unwrap();
        let s = load(&*mem).await.unwrap();
        assert_eq!((s.session_id.as_str(), s.seq), ("s2", 1), "2 is in flight");

        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(persist(mem.clone(), Tracker::resuming(&s), rx, watch::channel(false).1));
        tx.send(Note::Forget).unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(load(&*mem).await, None, "an invalid session is forgotten");

        // Stopped: nothing more is written.
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(persist(mem.clone(), Tracker::default(), rx, stopped));
        stop.send(true).unwrap();
        tx.send(ready(3, 9)).unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(load(&*mem).await, None, "a stopped reader writes nothing");
    }
}
