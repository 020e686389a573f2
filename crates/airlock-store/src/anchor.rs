//! The audit anchor: the latest signed checkpoint, kept outside the database (a file in the data
//! directory). Someone who can rewrite the database can delete its checkpoint rows and re-hash
//! the (unkeyed) chain after an edit; they cannot forge the anchor's signature, and unless they
//! can also write the data directory, the anchor still names the old head. `audit verify`
//! compares the database against it ([`check`]).
//!
//! Limits: records after the anchor's seq are chained but not signed (the unsigned tail);
//! someone who controls both the database and the data directory can roll both back together
//! to an older, genuinely signed state. An external copy of the anchor closes that.

use std::io::Write;
use std::path::Path;

use airlock_core::audit::checkpoint_message;

use crate::{CheckpointRow, Store, StoreError};

/// The file name, in the data directory.
pub const ANCHOR_FILE: &str = "audit-anchor.json";

/// A signed checkpoint, as the anchor file holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    pub seq: u64,
    /// Lowercase hex, as are the others.
    pub hash: String,
    pub signature: String,
    pub public_key: String,
    pub ts_ms: i64,
}

/// Why the database does not match its anchor (or the anchor cannot be read).
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("audit anchor {path} unreadable: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("audit anchor's signature does not verify with the audit key")]
    BadSignature,
    #[error("the database's audit chain is shorter than its anchor: no record at seq {seq} (records were removed)")]
    Shorter { seq: u64 },
    #[error("the database's audit chain differs from its anchor at seq {seq} (records were rewritten)")]
    Differs { seq: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Anchor {
    pub fn of(cp: &CheckpointRow) -> Anchor {
        Anchor {
            seq: u64::try_from(cp.seq).unwrap_or(0),
            hash: hex(&cp.hash),
            signature: hex(&cp.signature),
            public_key: hex(&cp.public_key),
            ts_ms: cp.ts_ms,
        }
    }
}

/// Replaces the anchor file atomically (a temporary file, synced, renamed over it): a crash
/// leaves the old anchor or the new one, never a torn file.
pub fn write(path: &Path, cp: &CheckpointRow) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(&Anchor::of(cp)).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The anchor at `path`; `None` when there is none yet (a log never checkpointed).
pub fn read(path: &Path) -> Result<Option<Anchor>, AnchorError> {
    let unreadable = |reason: String| AnchorError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| unreadable(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

/// Checks the database against `anchor`: its signature verifies with `key`, and the database
/// holds a record at its seq with its hash (so the chain was neither cut short nor rewritten
/// up to there; `verify_chain` checks the links).
pub async fn check(
    store: &Store,
    anchor: &Anchor,
    verify_sig: impl Fn(&[u8], &[u8], &[u8]) -> bool,
    key: &[u8],
) -> Result<(), AnchorError> {
    let (Some(hash), Some(sig), Some(pk)) = (unhex(&anchor.hash), unhex(&anchor.signature), unhex(&anchor.public_key))
    else {
        return Err(AnchorError::BadSignature);
    };
    let hash32: [u8; 32] = hash.as_slice().try_into().map_err(|_| AnchorError::BadSignature)?;
    if pk != key || !verify_sig(&pk, &checkpoint_message(anchor.seq, &hash32), &sig) {
        return Err(AnchorError::BadSignature);
    }
    let seq = i64::try_from(anchor.seq).unwrap_or(i64::MAX);
    let rows = store.audit_range(seq.saturating_sub(1), seq, 1).await?;
    match rows.first() {
        None => Err(AnchorError::Shorter { seq: anchor.seq }),
        Some(r) if r.hash != hash => Err(AnchorError::Differs { seq: anchor.seq }),
        Some(_) => Ok(()),
    }
}
