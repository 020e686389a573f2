//! Audit records and their hash chain. Pure: the store persists, the vault signs.
//!
//! Each record is serialized to canonical JSON (struct field order is fixed by the
//! type, maps are `BTreeMap`s), and chained as
//! `hash_n = SHA-256("airlock-audit-v1" || seq_n (u64 BE) || hash_{n-1} || body_n)`.
//! Any edit, deletion or reordering changes a hash that a later record depends on.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash that precedes the first record.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// One audited event. Secret *names* only, never values; query values are redacted upstream of here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch (given by the caller; the core has no clock).
    pub ts_ms: u64,
    /// "request", "exfiltration", "auth", "vote", "approval", "admin", …
    pub kind: String,
    pub agent: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    /// Path with query values redacted.
    pub path: Option<String>,
    pub rules: Vec<String>,
    /// "allow" | "deny" | "approve" | …
    pub decision: String,
    pub reason: String,
    /// Names of the secrets injected.
    pub secrets: Vec<String>,
    pub status: Option<u16>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_us: u64,
    /// Free-form details (approval id, voter, channel…); never secret values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl AuditEvent {
    /// The canonical bytes that are hashed and stored.
    pub fn canonical(&self) -> Vec<u8> {
        // Serializing a struct of plain fields cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `hash_n` from `hash_{n-1}`, the record's sequence number and its canonical body.
pub fn chain_hash(prev: &[u8; 32], seq: u64, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"airlock-audit-v1");
    h.update(seq.to_be_bytes());
    h.update(prev);
    h.update(body);
    h.finalize().into()
}

/// The message an Ed25519 checkpoint signs: the chain head at `seq`.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = b"airlock-checkpoint-v1".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// A stored record as read back for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub seq: u64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub body: Vec<u8>,
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// A sequence number is missing or out of order (deletion, reordering).
    Gap { expected: u64, found: u64 },
    /// `prev_hash` does not name the previous record's hash.
    BrokenLink { seq: u64 },
    /// The stored hash does not match the body (edit).
    BadHash { seq: u64 },
    /// The body is not a valid audit event.
    BadBody { seq: u64 },
    /// A checkpoint names a hash the chain does not have at that position.
    BadCheckpoint { seq: u64 },
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainError::Gap { expected, found } => {
                write!(
                    f,
                    "record {found}: expected record {expected} (a record was deleted or reordered)"
                )
            }
            ChainError::BrokenLink { seq } => {
                write!(
                    f,
                    "record {seq}: prev_hash does not match record {} (chain broken)",
                    seq.saturating_sub(1)
                )
            }
            ChainError::BadHash { seq } => write!(f, "record {seq}: hash does not match its contents (record edited)"),
            ChainError::BadBody { seq } => write!(f, "record {seq}: body is not a valid audit record (corrupted)"),
            ChainError::BadCheckpoint { seq } => {
                write!(
                    f,
                    "checkpoint at record {seq}: signature or hash does not match the chain"
                )
            }
        }
    }
}

/// Incremental verifier: feed records in `seq` order. Consumes nothing but memory for one hash.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: u64,
    prev: [u8; 32],
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self {
            next_seq: 1,
            prev: GENESIS,
        }
    }

    /// Checks one record; on success the verifier advances.
    pub fn push(&mut self, r: &StoredRecord) -> Result<(), ChainError> {
        if r.seq != self.next_seq {
            return Err(ChainError::Gap {
                expected: self.next_seq,
                found: r.seq,
            });
        }
        if r.prev_hash.as_slice() != self.prev.as_slice() {
            return Err(ChainError::BrokenLink { seq: r.seq });
        }
        if serde_json::from_slice::<AuditEvent>(&r.body).is_err() {
            return Err(ChainError::BadBody { seq: r.seq });
        }
        let h = chain_hash(&self.prev, r.seq, &r.body);
        if r.hash.as_slice() != h.as_slice() {
            return Err(ChainError::BadHash { seq: r.seq });
        }
        self.prev = h;
        self.next_seq += 1;
        Ok(())
    }

    /// The head after the records pushed so far: (last seq, its hash).
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.next_seq - 1, self.prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> AuditEvent {
        AuditEvent {
            ts_ms: n,
            kind: "request".into(),
            agent: Some("a".into()),
            method: Some("GET".into()),
            host: Some("h".into()),
            path: Some("/".into()),
            rules: vec![],
            decision: "allow".into(),
            reason: "r".into(),
            secrets: vec![],
            status: Some(200),
            bytes_in: 0,
            bytes_out: 0,
            latency_us: 0,
            detail: None,
        }
    }

    fn chain(n: u64) -> Vec<StoredRecord> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let body = ev(seq).canonical();
                let hash = chain_hash(&prev, seq, &body);
                let r = StoredRecord {
                    seq,
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                    body,
                };
                prev = hash;
                r
            })
            .collect()
    }

    fn verify(rs: &[StoredRecord]) -> Result<(), ChainError> {
        let mut v = ChainVerifier::new();
        rs.iter().try_for_each(|r| v.push(r))
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn edit_deletion_and_reorder_are_detected() {
        let mut c = chain(5);
        c[2].body = ev(99).canonical();
        assert_eq!(verify(&c), Err(ChainError::BadHash { seq: 3 }));

        let mut c = chain(5);
        c.remove(2);
        assert_eq!(verify(&c), Err(ChainError::Gap { expected: 3, found: 4 }));

        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(verify(&c), Err(ChainError::Gap { expected: 2, found: 3 }));

        // Re-numbering after a deletion still breaks the link.
        let mut c = chain(5);
        c.remove(2);
        c[2].seq = 3;
        c[3].seq = 4;
        assert_eq!(verify(&c), Err(ChainError::BrokenLink { seq: 3 }));

        let mut c = chain(3);
        c[1].body = b"not json".to_vec();
        assert_eq!(verify(&c), Err(ChainError::BadBody { seq: 2 }));
    }
}
