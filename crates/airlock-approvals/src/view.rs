//! Read models for the dashboard, the JSON API and the terminal.

use airlock_channels::{Card, Status};
use airlock_store::{ApprovalRow, StoreError};
use serde::Serialize;

use crate::Hub;

#[derive(Debug, Clone, Serialize)]
pub struct VoteView {
    pub person: String,
    pub approve: bool,
    pub channel: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub card: Card,
    pub status: Status,
    pub votes: Vec<VoteView>,
}

/// A page of approvals with what it leaves out, so no surface drops requests silently.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub approvals: Vec<ApprovalView>,
    /// Approvals in the listed state in all.
    pub total: u64,
    /// `total` minus those listed: past the limit (or with a card that no longer reads).
    pub not_shown: u64,
    /// "oldest first" (pending: the order a person works through them) or "newest first".
    pub order: &'static str,
}

/// One line for audit records and lists.
pub(crate) fn status_text(status: &Status) -> String {
    match status {
        Status::Pending { approved_by } if approved_by.is_empty() => "waiting for approval".into(),
        Status::Pending { approved_by } => format!("approved so far by {}", approved_by.join(", ")),
        Status::Approved { by, grant_secs, .. } => match grant_secs {
            Some(s) => format!("approved by {} with a grant of {s}s", by.join(", ")),
            None => format!("approved by {}", by.join(", ")),
        },
        Status::Denied { by, .. } => format!("denied by {by}"),
        Status::Expired { .. } => "expired without a decision".into(),
        Status::Abandoned { .. } => "abandoned: the gateway holding it stopped".into(),
        Status::Withdrawn { .. } => "withdrawn: the agent disconnected".into(),
        Status::Failed { reason, .. } => format!("refused: {reason}"),
    }
}

impl Hub {
    /// What the approval shows: this replica's live status when it holds it, else the store's
    /// (a pending row held by another replica shows its votes so far).
    fn status_of(&self, row: &ApprovalRow, votes: &[VoteView]) -> Status {
        if let Some(s) = self.with_live(&row.id, |l| l.status.clone()) {
            return s;
        }
        if row.state == "pending" {
            return Status::Pending {
                approved_by: votes.iter().filter(|v| v.approve).map(|v| v.person.clone()).collect(),
            };
        }
        match row.status.as_deref().and_then(|b| serde_json::from_slice(b).ok()) {
            Some(s) => s,
            None => Status::Failed {
                reason: format!("closed as {} without a readable status", row.state),
                at_ms: row.decided_ms.unwrap_or(row.created_ms) as u64,
            },
        }
    }

    async fn view(&self, row: ApprovalRow) -> Result<Option<ApprovalView>, StoreError> {
        let Ok(card) = serde_json::from_slice::<Card>(&row.card) else {
            return Ok(None);
        };
        let votes: Vec<VoteView> = self
            .inner
            .store
            .votes(&row.id)
            .await?
            .into_iter()
            .map(|v| VoteView {
                person: v.person,
                approve: v.approve,
                channel: v.channel,
                at_ms: v.at_ms,
            })
            .collect();
        Ok(Some(ApprovalView {
            status: self.status_of(&row, &votes),
            card,
            votes,
        }))
    }

    /// Newest first; `state` filters ("pending", "approved", …).
    pub async fn list(&self, state: Option<&str>, limit: i64) -> Result<Vec<ApprovalView>, StoreError> {
        let rows = self.inner.store.list_approvals(state, limit).await?;
        self.views(rows).await
    }

    /// The rows' views; a row whose card no longer reads is left out.
    async fn views(&self, rows: Vec<ApprovalRow>) -> Result<Vec<ApprovalView>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(v) = self.view(row).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Pending approvals oldest first, at most `limit`, with how many more are waiting.
    pub async fn pending(&self, limit: i64) -> Result<Listing, StoreError> {
        let rows = self.inner.store.pending_oldest_first(limit).await?;
        self.listing(rows, Some("pending"), "oldest first").await
    }

    /// [`Hub::list`] with how many approvals in `state` it leaves out.
    pub async fn list_counted(&self, state: Option<&str>, limit: i64) -> Result<Listing, StoreError> {
        let rows = self.inner.store.list_approvals(state, limit).await?;
        self.listing(rows, state, "newest first").await
    }

    async fn listing(
        &self,
        rows: Vec<ApprovalRow>,
        state: Option<&str>,
        order: &'static str,
    ) -> Result<Listing, StoreError> {
        let approvals = self.views(rows).await?;
        // Counted after listing: whatever arrived meanwhile is reported as not shown.
        let total = self.inner.store.count_approvals(state).await?;
        Ok(Listing {
            not_shown: total.saturating_sub(approvals.len() as u64),
            total,
            approvals,
            order,
        })
    }

    /// Pending approvals `person` may still decide, oldest first: a rule names one of their roles
    /// and they have not voted on it yet (empty for someone not configured).
    pub async fn pending_for(&self, person: &str, limit: i64) -> Result<Vec<ApprovalView>, StoreError> {
        let Some(roles) = self.inner.people.get(person).map(|p| p.roles.clone()) else {
            return Ok(Vec::new());
        };
        let rows = self.inner.store.pending_oldest_first(limit).await?;
        let mut out = self.views(rows).await?;
        out.retain(|v| {
            matches!(v.status, Status::Pending { .. })
                && v.card
                    .rules
                    .iter()
                    .any(|r| r.approvers.iter().any(|a| roles.contains(a)))
                && !v.votes.iter().any(|vote| vote.person == person)
        });
        Ok(out)
    }

    pub async fn get(&self, id: &str) -> Result<Option<ApprovalView>, StoreError> {
        match self.inner.store.get_approval(id).await? {
            Some(row) => self.view(row).await,
            None => Ok(None),
        }
    }
}
