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
        Status::Abandoned { .. } => "abandoned: the gateway restarted".into(),
        Status::Withdrawn { .. } => "withdrawn: the agent disconnected".into(),
        Status::Failed { reason, .. } => format!("refused: {reason}"),
    }
}

impl Hub {
    fn status_of(&self, row: &ApprovalRow) -> Status {
        if let Some(s) = self.with_live(&row.id, |l| l.status.clone()) {
            return s;
        }
        match row.status.as_deref().and_then(|b| serde_json::from_slice(b).ok()) {
            Some(s) => s,
            // Pending in the store but not held by this process.
            None => Status::Abandoned {
                at_ms: row.created_ms as u64,
            },
        }
    }

    async fn view(&self, row: ApprovalRow) -> Result<Option<ApprovalView>, StoreError> {
        let Ok(card) = serde_json::from_slice::<Card>(&row.card) else {
            return Ok(None);
        };
        let votes = self
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
            status: self.status_of(&row),
            card,
            votes,
        }))
    }

    /// Newest first; `state` filters ("pending", "approved", …).
    pub async fn list(&self, state: Option<&str>, limit: i64) -> Result<Vec<ApprovalView>, StoreError> {
        let rows = self.inner.store.list_approvals(state, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(v) = self.view(row).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub async fn get(&self, id: &str) -> Result<Option<ApprovalView>, StoreError> {
        match self.inner.store.get_approval(id).await? {
            Some(row) => self.view(row).await,
            None => Ok(None),
        }
    }
}
