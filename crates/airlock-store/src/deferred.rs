//! [`Store`]'s defer-mode operations (see `deferred_ops.rs` for the SQL and the design).

use crate::{Backend, Store, StoreError, postgres, sqlite};

/// The newest deferral of one request (agent + digest) that has not passed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub approval_id: String,
    /// The approval's state: pending, approved, denied, expired, abandoned, withdrawn.
    pub state: String,
    pub decided_ms: Option<i64>,
}

impl Store {
    /// Records that approval `approval_id` was deferred: `agent`'s request with `digest` may
    /// pass once after it is approved.
    pub async fn defer_add(&self, approval_id: &str, agent: &str, digest: &str, now_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, defer_add(approval_id, agent, digest, now_ms))
    }

    /// The newest deferral of `agent`'s request with `digest` that has not passed.
    pub async fn defer_latest(&self, agent: &str, digest: &str) -> Result<Option<Deferral>, StoreError> {
        let row = dispatch!(self, defer_latest(agent, digest))?;
        Ok(row.map(|(approval_id, state, decided_ms)| Deferral {
            approval_id,
            state,
            decided_ms,
        }))
    }

    /// Uses the one pass of approved deferral `approval_id`: `true` for exactly one caller,
    /// on any replica; `false` when it passed already or is not approved.
    pub async fn defer_pass(&self, approval_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        dispatch!(self, defer_pass(approval_id, now_ms))
    }
}
