//! Rows and `Store` methods for approvals, votes, sent cards, grants and dashboard sign-in.
//! Decisions are applied by one conditional update, so a decision lands exactly once even
//! when several deciders race.

use crate::{Backend, Store, StoreError, postgres, sqlite};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    pub id: String,
    pub agent: String,
    pub host: String,
    pub digest: String,
    /// JSON of the card.
    pub card: Vec<u8>,
    pub state: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub decided_ms: Option<i64>,
    /// JSON of the final status.
    pub status: Option<Vec<u8>>,
    /// The replica holding the agent's connection (the only one that may forward the request).
    pub replica: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRow {
    pub approval_id: String,
    pub person: String,
    pub approve: bool,
    /// An approving vote that also asked for a grant.
    pub grant: bool,
    pub channel: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub approval_id: String,
    pub channel: String,
    pub person: String,
    pub message_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub agent: String,
    pub rule: String,
    pub host: String,
    pub granted_by: String,
    pub approval_id: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub revoked_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_hash: Vec<u8>,
    pub person: String,
    pub csrf: String,
    pub expires_ms: i64,
}

impl Store {
    pub async fn insert_approval(&self, row: &ApprovalRow) -> Result<(), StoreError> {
        dispatch!(self, insert_approval(row))
    }

    /// Moves a pending approval to its final `state` (one `UPDATE … WHERE state = 'pending'`), and
    /// on PostgreSQL notifies every replica in the same transaction. False when it was no longer
    /// pending (someone else decided first): the caller must not act on its decision.
    pub async fn close_approval(
        &self,
        id: &str,
        state: &str,
        decided_ms: i64,
        status: &[u8],
    ) -> Result<bool, StoreError> {
        dispatch!(self, close_approval(id, state, decided_ms, status))
    }

    pub async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        dispatch!(self, get_approval(id))
    }

    /// Newest first; `state` filters (e.g. "pending").
    pub async fn list_approvals(&self, state: Option<&str>, limit: i64) -> Result<Vec<ApprovalRow>, StoreError> {
        dispatch!(self, list_approvals(state, limit))
    }

    /// Pending approvals oldest first (the order a person works through them), at most `limit`.
    pub async fn pending_oldest_first(&self, limit: i64) -> Result<Vec<ApprovalRow>, StoreError> {
        dispatch!(self, pending_oldest_first(limit))
    }

    /// How many approvals are in `state` (all of them when `None`).
    pub async fn count_approvals(&self, state: Option<&str>) -> Result<u64, StoreError> {
        dispatch!(self, count_approvals(state)).map(|n| n.max(0) as u64)
    }

    /// [`StoreError::AlreadyExists`] when this person already voted on this approval.
    pub async fn add_vote(&self, vote: &VoteRow) -> Result<(), StoreError> {
        dispatch!(self, add_vote(vote))
    }

    pub async fn votes(&self, approval_id: &str) -> Result<Vec<VoteRow>, StoreError> {
        dispatch!(self, votes(approval_id))
    }

    pub async fn add_message(&self, m: &MessageRow) -> Result<(), StoreError> {
        dispatch!(self, add_message(m))
    }

    pub async fn messages(&self, approval_id: &str) -> Result<Vec<MessageRow>, StoreError> {
        dispatch!(self, messages(approval_id))
    }

    pub async fn add_grant(&self, g: &GrantRow) -> Result<(), StoreError> {
        dispatch!(self, add_grant(g))
    }

    /// Grants neither revoked nor expired at `now_ms`, newest first.
    pub async fn active_grants(&self, now_ms: i64) -> Result<Vec<GrantRow>, StoreError> {
        dispatch!(self, active_grants(now_ms))
    }

    /// False when no active grant has this id.
    pub async fn revoke_grant(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        dispatch!(self, revoke_grant(id, now_ms))
    }

    pub async fn set_password(&self, person: &str, phc: &str, now_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, set_password(person, phc, now_ms))
    }

    pub async fn password(&self, person: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, password(person))
    }

    pub async fn put_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        dispatch!(self, put_session(s))
    }

    /// The session with this token hash if it has not expired at `now_ms`.
    pub async fn session(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<SessionRow>, StoreError> {
        dispatch!(self, session(token_hash, now_ms))
    }

    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        dispatch!(self, delete_session(token_hash))
    }
}
