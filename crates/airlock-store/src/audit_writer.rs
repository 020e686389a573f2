//! The audit writer: the request path hands events to a bounded queue and never waits on the
//! database; one task owns the chain head, assigns sequence numbers, hashes, and group-commits.
//!
//! Nothing accepted is ever dropped. A failed commit keeps its batch in memory and is retried
//! with backoff; meanwhile the writer reports itself unhealthy and [`AuditHandle::append`]
//! refuses new events, so callers refuse the request (fail closed, invariant 5). A full queue
//! is refused the same way.
//!
//! Every `checkpoint_every` records (at seqs that are multiples of it) and at shutdown, the chain
//! head is signed and stored as a checkpoint (invariant 10).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_core::audit::{AuditEvent, GENESIS, chain_hash, checkpoint_message};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{AuditRow, CheckpointRow, Store, StoreError};

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
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            checkpoint_every: 1000,
            queue_capacity: 65_536,
            batch_max: 1024,
            max_backoff: Duration::from_secs(2),
            linger: Duration::from_millis(5),
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);

enum Msg {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The sending side, cloned into every request handler.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Msg>,
    healthy: Arc<AtomicBool>,
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
        self.tx.try_send(Msg::Event(Box::new(event))).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AuditUnavailable::QueueFull,
            mpsc::error::TrySendError::Closed(_) => AuditUnavailable::Stopped,
        })
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
    /// the head (unless one is already there), and ends the writer task. Like `flush`, waits
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
    head_seq: u64,
    head_hash: [u8; 32],
    last_checkpoint: u64,
}

impl AuditWriter {
    /// Reads the chain head from `store` and spawns the writer on the current tokio runtime.
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
        let (head_seq, head_hash) = match store.audit_head().await? {
            None => (0, GENESIS),
            Some((seq, hash)) => {
                let corrupt = |what: &str| StoreError::Corrupt {
                    what: format!("audit head: {what}"),
                    seq: Some(seq),
                };
                let s = u64::try_from(seq).map_err(|_| corrupt("negative seq"))?;
                let h: [u8; 32] = hash.try_into().map_err(|_| corrupt("hash is not 32 bytes"))?;
                (s, h)
            }
        };
        let last_checkpoint = match store.last_checkpoint().await? {
            None => 0,
            // Checkpoints are stored only after the records they sign, so one past the head means
            // records were removed. Extending a truncated log would bury that: refuse to start.
            Some(cp) if cp.seq > to_i64(head_seq) => {
                let what = format!(
                    "audit checkpoint at seq {} is past the last record {head_seq} (log truncated)",
                    cp.seq
                );
                return Err(StoreError::Corrupt {
                    what,
                    seq: Some(cp.seq),
                });
            }
            Some(cp) => u64::try_from(cp.seq).unwrap_or(0),
        };
        let healthy = Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let writer = AuditWriter {
            store,
            signer,
            opts,
            healthy: healthy.clone(),
            head_seq,
            head_hash,
            last_checkpoint,
        };
        let task = tokio::spawn(writer.run(rx));
        Ok((AuditHandle { tx, healthy }, task))
    }

    /// Files one queue message into the batch being built.
    fn take(
        &mut self,
        msg: Msg,
        rows: &mut Vec<AuditRow>,
        cps: &mut Vec<CheckpointRow>,
        flushes: &mut Vec<oneshot::Sender<()>>,
        shutdowns: &mut Vec<oneshot::Sender<()>>,
        rx: &mut mpsc::Receiver<Msg>,
    ) {
        match msg {
            Msg::Event(ev) => self.push(&ev, rows, cps),
            Msg::Flush(done) => flushes.push(done),
            Msg::Shutdown(done) => {
                rx.close();
                shutdowns.push(done);
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let batch_max = self.opts.batch_max.max(1);
        let mut rows = Vec::new();
        let mut cps = Vec::new();
        let mut flushes = Vec::new();
        let mut shutdowns = Vec::new();
        // `recv` returns `None` once every handle is dropped, or after `close` (shutdown) once the
        // queue is drained — so everything accepted is committed before the task ends.
        while let Some(msg) = rx.recv().await {
            let mut next = Some(msg);
            while let Some(msg) = next.take() {
                self.take(msg, &mut rows, &mut cps, &mut flushes, &mut shutdowns, &mut rx);
                if rows.len() < batch_max {
                    next = rx.try_recv().ok();
                }
            }
            // Linger so a trickle of requests shares one transaction: a commit costs far more
            // than a row. Nobody waits on this: requests are answered before their record lands.
            if !self.opts.linger.is_zero() && flushes.is_empty() && shutdowns.is_empty() {
                let deadline = tokio::time::Instant::now() + self.opts.linger;
                while rows.len() < batch_max && flushes.is_empty() && shutdowns.is_empty() {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(msg)) => self.take(msg, &mut rows, &mut cps, &mut flushes, &mut shutdowns, &mut rx),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            self.commit(&mut rows, &mut cps).await;
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
        if self.head_seq > self.last_checkpoint {
            let mut cps = vec![self.checkpoint(self.head_seq, self.head_hash)];
            self.commit(&mut Vec::new(), &mut cps).await;
        }
        self.healthy.store(false, Ordering::Release);
        for done in shutdowns {
            let _ = done.send(());
        }
    }

    /// Assigns the next seq, extends the chain in memory, and schedules a checkpoint if due.
    fn push(&mut self, ev: &AuditEvent, rows: &mut Vec<AuditRow>, cps: &mut Vec<CheckpointRow>) {
        let seq = self.head_seq + 1;
        let body = ev.canonical();
        let hash = chain_hash(&self.head_hash, seq, &body);
        rows.push(AuditRow {
            seq: to_i64(seq),
            ts_ms: to_i64(ev.ts_ms),
            prev_hash: self.head_hash.to_vec(),
            hash: hash.to_vec(),
            body,
        });
        self.head_seq = seq;
        self.head_hash = hash;
        if self.opts.checkpoint_every > 0 && seq.is_multiple_of(self.opts.checkpoint_every) {
            cps.push(self.checkpoint(seq, hash));
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

    /// Commits `rows` then `cps`, retrying with backoff until both are stored. Never gives up:
    /// the batch is the only copy of accepted events.
    async fn commit(&mut self, rows: &mut Vec<AuditRow>, cps: &mut Vec<CheckpointRow>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.try_commit(rows, cps).await {
                Ok(()) => break,
                Err(e) => {
                    if self.healthy.swap(false, Ordering::AcqRel) {
                        tracing::error!(error = %e, "audit commit failed; refusing new events and retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.opts.max_backoff);
                }
            }
        }
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::warn!("audit commit succeeded after retrying; accepting events again");
        }
    }

    /// Stores what is still pending; clears each part once it is durably stored.
    async fn try_commit(&mut self, rows: &mut Vec<AuditRow>, cps: &mut Vec<CheckpointRow>) -> Result<(), StoreError> {
        if !rows.is_empty() {
            if let Err(e) = self.store.append_audit(rows).await {
                // The commit may have landed with only its acknowledgement lost (or a retry may
                // race one that did): if the stored head is exactly our last row, it is in.
                if !self.landed(rows).await {
                    return Err(e);
                }
            }
            rows.clear();
        }
        while let Some(cp) = cps.first() {
            match self.store.put_checkpoint(cp).await {
                // An existing checkpoint at this seq means an earlier attempt landed.
                Ok(()) | Err(StoreError::AlreadyExists { .. }) => {
                    self.last_checkpoint = self.last_checkpoint.max(u64::try_from(cp.seq).unwrap_or(0));
                    cps.remove(0);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn landed(&self, rows: &[AuditRow]) -> bool {
        let Some(last) = rows.last() else { return true };
        matches!(self.store.audit_head().await, Ok(Some((seq, hash))) if seq == last.seq && hash == last.hash)
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
