//! The audit writer: the request path hands events to a bounded queue and never waits on the
//! database; one task group-commits them with [`Store::append_audit_chained`], which chains each
//! batch onto whatever head the database has at commit time. So the writers of several replicas
//! sharing one database extend one chain: the writer keeps no head of its own to go stale.
//!
//! Nothing accepted is ever dropped. A failed commit keeps its batch in memory and is retried
//! with backoff; meanwhile the writer reports itself unhealthy and [`AuditHandle::append`]
//! refuses new events, so callers refuse the request (fail closed, invariant 5). A full queue
//! is refused the same way.
//!
//! Durability: [`AuditHandle::append`] returns once the event is queued, which is enough for
//! records of what the gateway refused. What releases a side effect (a held request going
//! upstream, a vote acknowledged) waits with [`AuditHandle::append_durable`] until the batch
//! holding its record is committed — group commit: waiters share one transaction, and a commit
//! in flight gathers the next batch — bounded by [`WriterOptions::commit_timeout`].
//!
//! Checkpoints (invariant 10): a writer signs every seq that is a multiple of `checkpoint_every`
//! and falls in one of its own batches — each seq is in exactly one batch, so each is signed once
//! whichever replica wrote it — and, at shutdown, the last record it appended, unless signed.
//! Replicas share the signing key (sealed in the store), so `verify` checks them all alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_core::audit::{AuditEvent, checkpoint_message};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{Batch, Chained, CheckpointRow, Store, StoreError};

/// The target of the line logged for each committed record (`AIRLOCK_LOG=airlock::audit=off`
/// silences them).
const LOG_TARGET: &str = "airlock::audit";

/// One log line per committed record, with stable fields: `event` (the record's kind), `seq`
/// (its place in the audit log: the id that ties a log line to its record), `agent`, `method`,
/// `host`, `path` (query values redacted), `rule`, `decision`, `status`, `latency_us`, `reason`.
/// Logged after the commit, so a line names a record that exists; never a secret or a body (the
/// record holds neither).
fn log_committed(first_seq: i64, lines: &mut Vec<AuditEvent>) {
    for (seq, ev) in (first_seq..).zip(lines.drain(..)) {
        tracing::info!(
            target: LOG_TARGET,
            event = ev.kind.as_str(),
            seq,
            agent = ev.agent.as_deref().unwrap_or(""),
            method = ev.method.as_deref().unwrap_or(""),
            host = ev.host.as_deref().unwrap_or(""),
            path = ev.path.as_deref().unwrap_or(""),
            rule = ev.rules.first().map(String::as_str).unwrap_or(""),
            decision = ev.decision.as_str(),
            status = ev.status.unwrap_or(0),
            latency_us = ev.latency_us,
            reason = ev.reason.as_str(),
            "audited"
        );
    }
}

/// Signs a checkpoint message; returns `(signature, public_key)`.
pub type Signer = Arc<dyn Fn(&[u8]) -> (Vec<u8>, Vec<u8>) + Send + Sync>;

/// Why [`AuditHandle::append`] refused an event. The caller must refuse the request it audits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditUnavailable {
    #[error("audit log unavailable: queue full")]
    QueueFull,
    #[error("audit log unavailable: writer cannot commit (retrying)")]
    Unhealthy,
    #[error("audit log unavailable: writer stopped")]
    Stopped,
    #[error("audit log unavailable: the record was not committed in time")]
    NotCommitted,
}

/// Tuning for [`AuditWriter::start_with`]. `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Sign a checkpoint at every seq that is a multiple of this; 0 = only at shutdown.
    pub checkpoint_every: u64,
    /// Events the queue holds before `append` refuses with `QueueFull`.
    pub queue_capacity: usize,
    /// Most events committed in one transaction.
    pub batch_max: usize,
    /// Upper bound of the retry backoff after a failed commit (starts at 10 ms, doubles).
    pub max_backoff: Duration,
    /// How long a batch waits for more events before it is committed (0 = commit at once).
    pub linger: Duration,
    /// How long one commit may take before it counts as failed (the writer turns unhealthy and
    /// retries), and how long [`AuditHandle::append_durable`] waits for its record before it
    /// reports [`AuditUnavailable::NotCommitted`] (the record stays queued and lands later).
    pub commit_timeout: Duration,
    /// Also sign the last record this writer appended when this long has passed since its last
    /// checkpoint and there are new records (so a quiet log is not left unsigned until 1,000
    /// records or shutdown). Zero: only by count and at shutdown.
    pub checkpoint_interval: Duration,
    /// Where to keep the latest signed checkpoint outside the database (see [`crate::anchor`]):
    /// rewritten atomically with each checkpoint this writer stores.
    pub anchor: Option<std::path::PathBuf>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            checkpoint_every: 1000,
            queue_capacity: 65_536,
            batch_max: 1024,
            max_backoff: Duration::from_secs(2),
            linger: Duration::from_millis(5),
            commit_timeout: Duration::from_secs(2),
            checkpoint_interval: Duration::from_secs(60),
            anchor: None,
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);

enum Msg {
    /// An event, and whoever waits for its batch to be committed.
    Event(Box<AuditEvent>, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The sending side, cloned into every request handler.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Msg>,
    healthy: Arc<AtomicBool>,
    commit_timeout: Duration,
}

impl std::fmt::Debug for AuditHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHandle")
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl AuditHandle {
    /// Queues an event without waiting. `Err` means it was not accepted: refuse the request.
    /// `Ok` means it will be committed (retried until it is) unless the process dies first.
    pub fn append(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        if !self.healthy.load(Ordering::Acquire) {
            return Err(if self.tx.is_closed() {
                AuditUnavailable::Stopped
            } else {
                AuditUnavailable::Unhealthy
            });
        }
        self.record(event)
    }

    /// Records what already happened (a request that was forwarded): unlike [`append`], it is
    /// queued even while commits are failing, and committed once the store returns — a request
    /// checked healthy before it was forwarded keeps its record when the store fails while it
    /// is in flight. Only a stopped writer or a full queue lose it (`Err`, for the caller to count).
    ///
    /// [`append`]: AuditHandle::append
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        self.send(event, None)
    }

    fn send(&self, event: AuditEvent, done: Option<oneshot::Sender<()>>) -> Result<(), AuditUnavailable> {
        self.tx
            .try_send(Msg::Event(Box::new(event), done))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => AuditUnavailable::QueueFull,
                mpsc::error::TrySendError::Closed(_) => AuditUnavailable::Stopped,
            })
    }

    /// Appends `event` and resolves once the batch holding it is committed: call it before
    /// releasing what the record is evidence of. Refused like [`append`] while commits fail;
    /// [`AuditUnavailable::NotCommitted`] when the commit takes longer than
    /// [`WriterOptions::commit_timeout`] (the store stopped answering) — the caller must then
    /// refuse, as the record may never land.
    ///
    /// [`append`]: AuditHandle::append
    pub async fn append_durable(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        if !self.is_healthy() {
            return Err(if self.tx.is_closed() {
                AuditUnavailable::Stopped
            } else {
                AuditUnavailable::Unhealthy
            });
        }
        let (done, committed) = oneshot::channel();
        self.send(event, Some(done))?;
        match tokio::time::timeout(self.commit_timeout, committed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(AuditUnavailable::Stopped),
            Err(_) => Err(AuditUnavailable::NotCommitted),
        }
    }

    /// `false` while commits are failing, and once the writer has stopped (or died).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire) && !self.tx.is_closed()
    }

    /// Resolves once every event appended before this call is committed. Waits for queue space
    /// and for retries; `Err(Stopped)` if the writer is gone.
    pub async fn flush(&self) -> Result<(), AuditUnavailable> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| AuditUnavailable::Stopped)?;
        rx.await.map_err(|_| AuditUnavailable::Stopped)
    }

    /// Stops accepting events, commits everything already queued, signs a final checkpoint at
    /// the last record this writer appended (unless it signed that one already; other replicas
    /// sign their own), and ends the writer task. Like `flush`, waits
    /// through retries; wrap it in a timeout if shutdown must be bounded.
    pub async fn shutdown(&self) -> Result<(), AuditUnavailable> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Shutdown(tx))
            .await
            .map_err(|_| AuditUnavailable::Stopped)?;
        rx.await.map_err(|_| AuditUnavailable::Stopped)
    }
}

/// Starts the writer task. See the module docs.
pub struct AuditWriter {
    store: Store,
    signer: Signer,
    opts: WriterOptions,
    healthy: Arc<AtomicBool>,
    /// Random per writer, and the number of its next batch: makes a retried append idempotent.
    id: [u8; 16],
    next_batch: i64,
    /// The last record this writer appended, and the highest seq it has signed.
    appended: Option<(u64, [u8; 32])>,
    signed: u64,
    /// The seq of the first record of the batch committed last.
    landed_first: i64,
}

/// An event waiting to be appended: `(ts_ms, canonical body)`.
type Pending = (i64, Vec<u8>);

/// Who waits on the batch being built: told once it is committed.
#[derive(Default)]
struct Waiting {
    flushes: Vec<oneshot::Sender<()>>,
    durable: Vec<oneshot::Sender<()>>,
    shutdowns: Vec<oneshot::Sender<()>>,
    /// The batch's records, for their log lines once committed (kept only when logged).
    lines: Vec<AuditEvent>,
}

impl Waiting {
    fn idle(&self) -> bool {
        self.flushes.is_empty() && self.durable.is_empty() && self.shutdowns.is_empty()
    }
}

impl AuditWriter {
    /// Checks the stored log and spawns the writer on the current tokio runtime.
    pub async fn start(
        store: Store,
        signer: Signer,
        checkpoint_every: u64,
    ) -> Result<(AuditHandle, JoinHandle<()>), StoreError> {
        Self::start_with(
            store,
            signer,
            WriterOptions {
                checkpoint_every,
                ..WriterOptions::default()
            },
        )
        .await
    }

    /// [`start`](Self::start) with explicit tuning.
    pub async fn start_with(
        store: Store,
        signer: Signer,
        opts: WriterOptions,
    ) -> Result<(AuditHandle, JoinHandle<()>), StoreError> {
        // The checkpoint first, then the head: other replicas may be appending meanwhile, and the
        // head only grows, so a checkpoint past a head read after it is truncation, not a race.
        let last_checkpoint = store.last_checkpoint().await?;
        let head_seq = store.audit_head().await?.map_or(0, |(seq, _)| seq);
        // Checkpoints are stored only after the records they sign, so one past the head means
        // records were removed. Extending a truncated log would bury that: refuse to start.
        if let Some(cp) = last_checkpoint.filter(|cp| cp.seq > head_seq) {
            let what = format!(
                "audit checkpoint at seq {} is past the last record {head_seq} (log truncated)",
                cp.seq
            );
            return Err(StoreError::Corrupt {
                what,
                seq: Some(cp.seq),
            });
        }
        let healthy = Arc::new(AtomicBool::new(true));
        let commit_timeout = opts.commit_timeout;
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let writer = AuditWriter {
            store,
            signer,
            opts,
            healthy: healthy.clone(),
            id: rand::random(),
            next_batch: 0,
            appended: None,
            signed: 0,
            landed_first: 0,
        };
        let task = tokio::spawn(writer.run(rx));
        Ok((
            AuditHandle {
                tx,
                healthy,
                commit_timeout,
            },
            task,
        ))
    }

    /// Files one queue message into the batch being built.
    fn take(msg: Msg, events: &mut Vec<Pending>, w: &mut Waiting, rx: &mut mpsc::Receiver<Msg>) {
        match msg {
            Msg::Event(ev, done) => {
                events.push((to_i64(ev.ts_ms), ev.canonical()));
                if tracing::enabled!(target: LOG_TARGET, tracing::Level::INFO) {
                    w.lines.push(*ev);
                }
                w.durable.extend(done);
            }
            Msg::Flush(done) => w.flushes.push(done),
            Msg::Shutdown(done) => {
                rx.close();
                w.shutdowns.push(done);
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let batch_max = self.opts.batch_max.max(1);
        let mut events = Vec::new();
        let mut cps = Vec::new();
        let mut w = Waiting::default();
        // `recv` returns `None` once every handle is dropped, or after `close` (shutdown) once the
        // queue is drained — so everything accepted is committed before the task ends.
        let mut last_signed = tokio::time::Instant::now();
        loop {
            let interval = self.opts.checkpoint_interval;
            let msg = if interval.is_zero() {
                rx.recv().await
            } else {
                match tokio::time::timeout_at(last_signed + interval, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        // Quiet since the last checkpoint: sign what was appended meanwhile.
                        last_signed = tokio::time::Instant::now();
                        if let Some((seq, hash)) = self.appended.filter(|(seq, _)| *seq > self.signed) {
                            cps.push(self.checkpoint(seq, hash));
                            self.commit(&mut events, &mut cps).await;
                        }
                        continue;
                    }
                }
            };
            let Some(msg) = msg else { break };
            let mut next = Some(msg);
            while let Some(msg) = next.take() {
                Self::take(msg, &mut events, &mut w, &mut rx);
                if events.len() < batch_max {
                    next = rx.try_recv().ok();
                }
            }
            // Linger so a trickle of requests shares one transaction: a commit costs far more
            // than a row. Only when nobody waits: durable appends are gathered by the commit
            // in flight instead (group commit), and pay no linger.
            if !self.opts.linger.is_zero() && w.idle() {
                let deadline = tokio::time::Instant::now() + self.opts.linger;
                while events.len() < batch_max && w.idle() {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(msg)) => Self::take(msg, &mut events, &mut w, &mut rx),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            if !interval.is_zero()
                && last_signed.elapsed() >= interval
                && let Some((seq, hash)) = self.appended.filter(|(seq, _)| *seq > self.signed)
            {
                // Busy, and due: sign the end of what was appended before this batch.
                last_signed = tokio::time::Instant::now();
                cps.push(self.checkpoint(seq, hash));
            }
            self.commit(&mut events, &mut cps).await;
            log_committed(self.landed_first, &mut w.lines);
            for done in w.flushes.drain(..).chain(w.durable.drain(..)) {
                let _ = done.send(());
            }
        }
        if let Some((seq, hash)) = self.appended.filter(|(seq, _)| *seq > self.signed) {
            let mut cps = vec![self.checkpoint(seq, hash)];
            self.commit(&mut Vec::new(), &mut cps).await;
        }
        self.healthy.store(false, Ordering::Release);
        for done in w.shutdowns {
            let _ = done.send(());
        }
    }

    /// Notes where a batch landed and schedules the checkpoints that fall in it.
    fn landed(&mut self, batch: &Chained, cps: &mut Vec<CheckpointRow>) {
        self.landed_first = batch.first_seq;
        let first = u64::try_from(batch.first_seq).unwrap_or(0);
        for (seq, hash) in (first..).zip(&batch.hashes) {
            if self.opts.checkpoint_every > 0 && seq.is_multiple_of(self.opts.checkpoint_every) {
                cps.push(self.checkpoint(seq, *hash));
            }
        }
        if let Some((seq, hash)) = batch.last() {
            self.appended = Some((u64::try_from(seq).unwrap_or(0), hash));
        }
    }

    fn checkpoint(&self, seq: u64, hash: [u8; 32]) -> CheckpointRow {
        let (signature, public_key) = (self.signer)(&checkpoint_message(seq, &hash));
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        CheckpointRow {
            seq: to_i64(seq),
            hash: hash.to_vec(),
            signature,
            public_key,
            ts_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
        }
    }

    /// Commits `events` then `cps`, retrying with backoff until both are stored. Never gives up:
    /// the batch is the only copy of accepted events.
    async fn commit(&mut self, events: &mut Vec<Pending>, cps: &mut Vec<CheckpointRow>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            // Bounded: a store that stops answering (a hung server, a silent network) must turn
            // the writer unhealthy within seconds, so requests are refused rather than forwarded
            // with records piling up in memory. A commit cut short is retried under the same
            // batch id, so one that landed unacknowledged is not appended twice.
            let attempt = tokio::time::timeout(self.opts.commit_timeout, self.try_commit(events, cps)).await;
            let failure = match attempt {
                Ok(Ok(())) => break,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.opts.commit_timeout),
            };
            if self.healthy.swap(false, Ordering::AcqRel) {
                tracing::error!(error = %failure, "audit commit failed; refusing new events and retrying");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.opts.max_backoff);
        }
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::warn!("audit commit succeeded after retrying; accepting events again");
        }
    }

    /// Stores what is still pending; clears each part once it is durably stored.
    async fn try_commit(&mut self, events: &mut Vec<Pending>, cps: &mut Vec<CheckpointRow>) -> Result<(), StoreError> {
        if !events.is_empty() {
            // The same batch id on every attempt: an attempt that committed unacknowledged is
            // recognised by the store instead of appended again.
            let batch = Batch {
                writer: self.id,
                number: self.next_batch,
                after: self.appended.map(|(seq, hash)| (to_i64(seq), hash)),
            };
            let chained = self.store.append_audit_chained(batch, events).await?;
            self.next_batch += 1;
            events.clear();
            self.landed(&chained, cps);
        }
        while let Some(cp) = cps.first() {
            let seq = u64::try_from(cp.seq).unwrap_or(0);
            match self.store.put_checkpoint(cp).await {
                Ok(()) => {
                    if seq > self.signed
                        && let Some(path) = &self.opts.anchor
                        && let Err(e) = crate::anchor::write(path, cp)
                    {
                        // The checkpoint is stored; only its copy outside the database is stale.
                        tracing::error!(error = %e, path = %path.display(), "could not write the audit anchor");
                    }
                    self.signed = self.signed.max(seq);
                }
                // A different checkpoint already holds this seq: not ours to replace, and retrying
                // cannot help. `verify` judges it; this writer's records stay chained regardless.
                Err(StoreError::AlreadyExists { what }) => {
                    tracing::error!(%what, "audit checkpoint not stored: another is at its seq");
                }
                Err(e) => return Err(e),
            }
            cps.remove(0);
        }
        Ok(())
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
