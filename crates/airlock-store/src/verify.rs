//! `airlock audit verify`: streams the audit log through `airlock_core`'s [`ChainVerifier`] a page
//! at a time (constant memory for any length) and checks every signed checkpoint against it.
//!
//! What it proves: no record was edited, deleted, inserted or reordered up to the head, and every
//! checkpoint was signed by the expected key over the chain's actual hash at its position. Records
//! after the last checkpoint (`unsigned_tail`) are chained but not yet signed: truncating only
//! those cannot be detected, which is why the writer signs periodically and at shutdown.

use airlock_core::audit::{ChainError, ChainVerifier, StoredRecord, checkpoint_message};
use serde::Deserialize;

use crate::{AuditRow, CheckpointRow, Store, StoreError};

/// Records fetched per query.
const PAGE: i64 = 2000;

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records verified (the chain is `1..=records`).
    pub records: u64,
    /// Checkpoints verified.
    pub checkpoints: u64,
    /// The last record's seq (0 for an empty log).
    pub head_seq: u64,
    /// The last record's hash (`GENESIS` for an empty log).
    pub head_hash: [u8; 32],
    /// Records after the last checkpoint: chained, not yet signed. Informational.
    pub unsigned_tail: u64,
}

/// The first problem found. Each variant names the record or checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain itself is broken (edit, deletion, reordering), or a checkpoint's signature or
    /// hash does not match the chain (`ChainError::BadCheckpoint`).
    #[error("audit chain invalid: {0}")]
    Chain(ChainError),
    /// A checkpoint was signed by a key other than the expected one.
    #[error("checkpoint at record {seq}: signed by an unexpected public key")]
    CheckpointKey { seq: u64 },
    /// The record's `ts_ms` column disagrees with the timestamp inside its hashed body.
    #[error("record {seq}: ts_ms column does not match the hashed record (edited)")]
    Timestamp { seq: u64 },
    /// A row could not be read (e.g. [`StoreError::Corrupt`] naming its seq), or the database failed.
    #[error("audit store: {0}")]
    Store(StoreError),
}

impl VerifyError {
    /// The seq of the record or checkpoint at fault, when there is one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            VerifyError::Chain(c) => Some(match *c {
                ChainError::Gap { expected, .. } => expected,
                ChainError::BrokenLink { seq }
                | ChainError::BadHash { seq }
                | ChainError::BadBody { seq }
                | ChainError::BadCheckpoint { seq } => seq,
            }),
            VerifyError::CheckpointKey { seq } | VerifyError::Timestamp { seq } => Some(*seq),
            VerifyError::Store(e) => e.seq().and_then(|s| u64::try_from(s).ok()),
        }
    }
}

impl From<ChainError> for VerifyError {
    fn from(e: ChainError) -> Self {
        VerifyError::Chain(e)
    }
}

impl From<StoreError> for VerifyError {
    fn from(e: StoreError) -> Self {
        VerifyError::Store(e)
    }
}

/// Only the field the `ts_ms` column mirrors; the verifier has already checked the whole body.
#[derive(Deserialize)]
struct Ts {
    ts_ms: u64,
}

/// Verifies the whole audit log. `verify_sig(public_key, message, signature)` checks one
/// signature; every checkpoint must carry `expected_pubkey`.
pub async fn verify_chain(
    store: &Store,
    verify_sig: impl Fn(&[u8], &[u8], &[u8]) -> bool,
    expected_pubkey: &[u8],
) -> Result<VerifyReport, VerifyError> {
    // Checkpoints first: any checkpoint read now covers records that are already committed.
    let checkpoints = store.checkpoints().await?;
    let mut pending = checkpoints.iter().peekable();
    let check =
        |cp: &CheckpointRow, chain: Option<&[u8; 32]>| check_checkpoint(cp, chain, &verify_sig, expected_pubkey);

    let mut v = ChainVerifier::new();
    let mut checked = 0u64;
    let mut last_checkpoint = 0u64;
    // Start below any possible seq so that rows planted at seq <= 0 are seen, not skipped.
    let mut after = i64::MIN;
    loop {
        let page = next_page(store, after).await?;
        let Some(last) = page.rows.last() else {
            if let Some(e) = page.error {
                return Err(e.into());
            }
            break;
        };
        after = last.seq;
        for row in page.rows {
            let row_seq = row.seq;
            let seq = push(&mut v, row)?;
            let (_, hash) = v.head();
            while let Some(cp) = pending.next_if(|cp| cp.seq <= row_seq) {
                // A checkpoint at a seq the chain skipped can only be one the chain lacks.
                check(cp, (cp.seq == row_seq).then_some(&hash))?;
                checked += 1;
                last_checkpoint = seq;
            }
        }
        if let Some(e) = page.error {
            return Err(e.into());
        }
    }
    // Checkpoints past the head: the log was truncated (or the checkpoint is forged).
    if let Some(cp) = pending.next() {
        check(cp, None)?;
    }
    let (head_seq, head_hash) = v.head();
    Ok(VerifyReport {
        records: head_seq,
        checkpoints: checked,
        head_seq,
        head_hash,
        unsigned_tail: head_seq - last_checkpoint,
    })
}

/// Good rows, then the read error (if any) that stopped the page.
struct Page {
    rows: Vec<AuditRow>,
    error: Option<StoreError>,
}

/// One page after `after`. If a row in it is corrupt, re-reads the rows before it so they are
/// verified first and the report names the *first* bad record.
async fn next_page(store: &Store, after: i64) -> Result<Page, StoreError> {
    match store.audit_range(after, i64::MAX, PAGE).await {
        Ok(rows) => Ok(Page { rows, error: None }),
        Err(e) => match e.seq() {
            Some(bad) if bad > after => {
                let rows = store.audit_range(after, bad - 1, PAGE).await?;
                Ok(Page { rows, error: Some(e) })
            }
            _ => Err(e),
        },
    }
}

fn push(v: &mut ChainVerifier, row: AuditRow) -> Result<u64, VerifyError> {
    let Ok(seq) = u64::try_from(row.seq) else {
        let what = "audit_records: seq is not positive".to_owned();
        return Err(StoreError::Corrupt {
            what,
            seq: Some(row.seq),
        }
        .into());
    };
    let ts_ms = row.ts_ms;
    let record = StoredRecord {
        seq,
        prev_hash: row.prev_hash,
        hash: row.hash,
        body: row.body,
    };
    v.push(&record)?;
    // The verifier accepted the body as an audit event, so it has a `ts_ms`.
    match serde_json::from_slice::<Ts>(&record.body) {
        Ok(ts) if i64::try_from(ts.ts_ms).unwrap_or(i64::MAX) == ts_ms => Ok(seq),
        _ => Err(VerifyError::Timestamp { seq }),
    }
}

fn check_checkpoint(
    cp: &CheckpointRow,
    chain: Option<&[u8; 32]>,
    verify_sig: &impl Fn(&[u8], &[u8], &[u8]) -> bool,
    expected_pubkey: &[u8],
) -> Result<(), VerifyError> {
    let seq = u64::try_from(cp.seq).unwrap_or(0);
    if cp.public_key != expected_pubkey {
        return Err(VerifyError::CheckpointKey { seq });
    }
    let bad = || VerifyError::Chain(ChainError::BadCheckpoint { seq });
    let hash: [u8; 32] = cp.hash.as_slice().try_into().map_err(|_| bad())?;
    if !verify_sig(&cp.public_key, &checkpoint_message(seq, &hash), &cp.signature) {
        return Err(bad());
    }
    if chain != Some(&hash) {
        return Err(bad());
    }
    Ok(())
}
