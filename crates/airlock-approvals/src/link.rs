//! What a link-based channel (email) shows before anyone votes: the approval a link names,
//! only when the link's token was minted for the person whose address it carries. Opening a
//! link neither votes nor records anything; the confirming POST is an ordinary click.

use airlock_channels::token::{self, Claims, Decision};
use airlock_store::StoreError;

use crate::{ApprovalView, Hub};

/// An approval as one person's link shows it.
#[derive(Debug, Clone)]
pub struct LinkView {
    /// The person the link was minted for.
    pub person: String,
    /// The decision the link offers.
    pub decision: Decision,
    pub approval: ApprovalView,
    /// How this person already voted, if they did.
    pub voted: Option<bool>,
}

impl Hub {
    /// The approval behind `token` as `user` (their address on `channel`) may see it; `None`
    /// for anything not minted for that person on a token-binding channel. An expired token
    /// still shows its approval: a late reader learns how it ended.
    pub async fn link_view(&self, channel: &str, user: &str, token: &str) -> Result<Option<LinkView>, StoreError> {
        if !self.channel(channel).is_some_and(|c| c.binds_tokens()) {
            return Ok(None);
        }
        let Ok(claims) = Claims::parse(token) else {
            return Ok(None);
        };
        let Some(person) = self.inner.people.by_identity(channel, user) else {
            return Ok(None);
        };
        let Some(approval) = self.get(&claims.id).await? else {
            return Ok(None);
        };
        let holder = token::holder(channel, &person);
        if claims
            .verify_mac_for(&self.inner.key, &approval.card.digest, &holder)
            .is_err()
        {
            return Ok(None);
        }
        let voted = approval.votes.iter().find(|v| v.person == person).map(|v| v.approve);
        Ok(Some(LinkView {
            person,
            decision: claims.decision,
            approval,
            voted,
        }))
    }
}
