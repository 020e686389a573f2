//! Grants: "approve for 15 minutes", scoped to agent + rule + host, time-limited and
//! revocable. Kept in memory for the request path (no store round trip per request); the
//! store is the record, and every replica reloads its copy when told of a change (or, if a
//! notification was missed, within a second by polling).

use airlock_channels::Card;
use airlock_store::GrantRow;

use crate::{Hub, event, now_ms, random_id};

pub(crate) async fn create(hub: &Hub, card: &Card, by: &[String], secs: u64, at_ms: u64) {
    let approval = card.id.as_str();
    let mut created = false;
    for rule in card.rules.iter().map(|r| r.name.clone()) {
        let g = GrantRow {
            id: random_id(),
            agent: card.agent.clone(),
            rule,
            host: card.host.clone(),
            granted_by: by.join(", "),
            approval_id: approval.to_string(),
            created_ms: at_ms as i64,
            expires_ms: (at_ms + secs * 1000) as i64,
            revoked_ms: None,
        };
        // A grant that cannot be recorded is not given (the approval itself still stands).
        if let Err(e) = hub.inner.store.add_grant(&g).await {
            tracing::warn!(approval, error = %e, "could not record a grant");
            continue;
        }
        hub.audit(event(
            "grant",
            &g.agent,
            &g.host,
            "granted",
            &format!("{} granted rule \"{}\" for {secs}s", g.granted_by, g.rule),
            serde_json::json!({ "grant": g.id, "approval": approval, "expires_ms": g.expires_ms }),
        ));
        if let Ok(mut v) = hub.inner.grants.write() {
            v.push(g);
        }
        created = true;
    }
    if created {
        hub.grants_changed().await;
    }
}

impl Hub {
    /// The grants that let this request through without a card: one live grant for
    /// (agent, rule, host) for *every* approve rule it matched; otherwise `None`.
    pub fn grant_for(&self, agent: &str, rules: &[String], host: &str, now_ms: u64) -> Option<Vec<String>> {
        let grants = self.inner.grants.read().ok()?;
        let now = now_ms as i64;
        let mut ids = Vec::new();
        for rule in rules {
            let g = grants
                .iter()
                .find(|g| g.agent == agent && &g.rule == rule && g.host == host && g.expires_ms > now)?;
            ids.push(g.id.clone());
        }
        (!ids.is_empty()).then_some(ids)
    }

    /// Live grants, newest first.
    pub fn grants(&self) -> Vec<GrantRow> {
        let now = now_ms() as i64;
        let mut v: Vec<GrantRow> = self
            .inner
            .grants
            .read()
            .map(|g| g.iter().filter(|g| g.expires_ms > now).cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|g| std::cmp::Reverse(g.created_ms));
        v
    }

    /// Ends a grant now. False when no live grant has this id.
    pub async fn revoke_grant(&self, id: &str, by: &str) -> Result<bool, airlock_store::StoreError> {
        let now = now_ms();
        let revoked = self.inner.store.revoke_grant(id, now as i64).await?;
        let removed = self.inner.grants.write().ok().and_then(|mut v| {
            let i = v.iter().position(|g| g.id == id)?;
            Some(v.remove(i))
        });
        if revoked {
            self.grants_changed().await;
        }
        if let Some(g) = removed.filter(|_| revoked) {
            self.audit(event(
                "grant",
                &g.agent,
                &g.host,
                "revoked",
                &format!("{by} revoked the grant for rule \"{}\"", g.rule),
                serde_json::json!({ "grant": id }),
            ));
        }
        Ok(revoked)
    }
}

impl Hub {
    /// Tells the other replicas that grants changed.
    async fn grants_changed(&self) {
        if let Err(e) = self.inner.store.notify(airlock_store::GRANTS).await {
            tracing::warn!(error = %e, "could not announce a grant change; replicas poll for it");
        }
    }

    /// Replaces the in-memory copy with the store's live grants.
    pub(crate) async fn reload_grants(&self) -> Result<(), airlock_store::StoreError> {
        let fresh = self.inner.store.active_grants(now_ms() as i64).await?;
        if let Ok(mut v) = self.inner.grants.write() {
            *v = fresh;
        }
        Ok(())
    }
}
