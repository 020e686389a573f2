//! How many requests one agent may have held for approval at once. Each held request keeps
//! the agent's connection, a task and its body; without a cap, one agent could hold thousands
//! and the file-descriptor limit would be the only ceiling. Counted per gateway process.
//! Deferred approvals (`on_hold = "defer"`) hold no connection but send cards to people: they
//! are counted by a second cap of the same size, their permit kept until the approval ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The per-agent count of held requests, and its limit.
#[derive(Debug)]
pub struct HeldCap {
    max: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One held request of one agent; dropping it frees the slot. Owned, so a deferred approval's
/// background task can keep it.
#[must_use = "the slot is freed when the permit is dropped"]
#[derive(Debug)]
pub struct HeldPermit {
    held: Arc<Mutex<HashMap<String, usize>>>,
    agent: String,
}

/// The agent already holds as many requests as it may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "agent {agent} already has {max} requests waiting for approval (approvals.max_held_per_agent); decide or withdraw one first"
)]
pub struct Full {
    pub agent: String,
    pub max: usize,
}

impl HeldCap {
    pub fn new(max: usize) -> Self {
        HeldCap {
            max,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes a slot for `agent`, or says why not. A poisoned lock refuses (fail closed).
    pub fn acquire(&self, agent: &str) -> Result<HeldPermit, Full> {
        let full = || Full {
            agent: agent.to_owned(),
            max: self.max,
        };
        let mut held = self.held.lock().map_err(|_| full())?;
        let n = held.entry(agent.to_owned()).or_insert(0);
        if *n >= self.max {
            return Err(full());
        }
        *n += 1;
        Ok(HeldPermit {
            held: self.held.clone(),
            agent: agent.to_owned(),
        })
    }

    /// Requests `agent` holds now.
    pub fn held(&self, agent: &str) -> usize {
        let held = match self.held.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        held.get(agent).copied().unwrap_or(0)
    }
}

impl Drop for HeldPermit {
    fn drop(&mut self) {
        let mut held = match self.held.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = held.get_mut(&self.agent) {
            *n = n.saturating_sub(1);
            // Forget agents holding nothing, so the map stays as small as what is held.
            if *n == 0 {
                held.remove(&self.agent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_agent_and_frees_on_drop() {
        let cap = HeldCap::new(2);
        let a1 = cap.acquire("a").unwrap();
        let _a2 = cap.acquire("a").unwrap();
        assert_eq!(
            cap.acquire("a").unwrap_err(),
            Full {
                agent: "a".into(),
                max: 2
            }
        );
        let _b = cap.acquire("b").unwrap();
        drop(a1);
        assert_eq!(cap.held("a"), 1);
        let _a3 = cap.acquire("a").unwrap();
        assert_eq!(cap.held("a"), 2);
    }
}
