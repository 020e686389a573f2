//! Rows and `Store` methods for approvals, votes, sent cards, grants and dashboard sign-in.
//! Decisions are applied by one conditional update, so a decision lands exactly once even
//! when several deciders race.

use crate::{Backend, Store, StoreError, approvals_sqlite as db};

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRow {
    pub approval_id: String,
    pub person: String,
    pub approve: bool,
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
        match &self.backend {
            Backend::Sqlite(p) => db::insert_approval(p, row).await,
        }
    }

    /// Moves a pending approval to its final `state`. False when it was no longer pending
    /// (someone else decided first): the caller must not act on its decision.
    pub async fn close_approval(
        &self,
        id: &str,
        state: &str,
        decided_ms: i64,
        status: &[u8],
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::close_approval(p, id, state, decided_ms, status).await,
        }
    }

    pub async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::get_approval(p, id).await,
        }
    }

    /// Newest first; `state` filters (e.g. "pending").
    pub async fn list_approvals(&self, state: Option<&str>, limit: i64) -> Result<Vec<ApprovalRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::list_approvals(p, state, limit).await,
        }
    }

    /// [`StoreError::AlreadyExists`] when this person already voted on this approval.
    pub async fn add_vote(&self, vote: &VoteRow) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::add_vote(p, vote).await,
        }
    }

    pub async fn votes(&self, approval_id: &str) -> Result<Vec<VoteRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::votes(p, approval_id).await,
        }
    }

    pub async fn add_message(&self, m: &MessageRow) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::add_message(p, m).await,
        }
    }

    pub async fn messages(&self, approval_id: &str) -> Result<Vec<MessageRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::messages(p, approval_id).await,
        }
    }

    pub async fn add_grant(&self, g: &GrantRow) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::add_grant(p, g).await,
        }
    }

    /// Grants neither revoked nor expired at `now_ms`, newest first.
    pub async fn active_grants(&self, now_ms: i64) -> Result<Vec<GrantRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::active_grants(p, now_ms).await,
        }
    }

    /// False when no active grant has this id.
    pub async fn revoke_grant(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::revoke_grant(p, id, now_ms).await,
        }
    }

    pub async fn set_password(&self, person: &str, phc: &str, now_ms: i64) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::set_password(p, person, phc, now_ms).await,
        }
    }

    pub async fn password(&self, person: &str) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::password(p, person).await,
        }
    }

    pub async fn put_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::put_session(p, s).await,
        }
    }

    /// The session with this token hash if it has not expired at `now_ms`.
    pub async fn session(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<SessionRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::session(p, token_hash, now_ms).await,
        }
    }

    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => db::delete_session(p, token_hash).await,
        }
    }
}
