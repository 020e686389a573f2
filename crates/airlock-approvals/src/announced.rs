//! What this replica's dashboards were told about approvals that other replicas hold.
//!
//! Such an approval is announced from a fresh read of the store on each notification, and the
//! reads run concurrently: an older read ("pending") can finish after a newer one ("approved").
//! Decisions are final, so once an approval was announced decided, nothing more is announced
//! for it; "pending" stays news until then (the store cannot say whose vote moved it, and a
//! dashboard re-reads the card on each event).

use std::collections::{HashMap, VecDeque};

/// Approvals remembered; older ones are forgotten first (a late read of one that old is
/// announced again, which a dashboard tolerates: it re-reads the approval).
const KEEP: usize = 4096;

#[derive(Default)]
pub(crate) struct Announced {
    decided: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Announced {
    /// Whether `state` of approval `id` is news to the dashboards; remembers it if decided.
    pub(crate) fn news(&mut self, id: &str, state: &str) -> bool {
        if self.decided.contains_key(id) {
            return false;
        }
        if state == "pending" {
            return true;
        }
        if self.order.len() == KEEP
            && let Some(old) = self.order.pop_front()
        {
            self.decided.remove(&old);
        }
        self.decided.insert(id.to_string(), state.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decided_approval_is_announced_once_and_never_pending_again() {
        let mut a = Announced::default();
        assert!(a.news("x", "pending"));
        assert!(a.news("x", "pending"), "a vote's progress is news");
        assert!(a.news("x", "approved"));
        // A read that started before the decision and finished after it.
        assert!(!a.news("x", "pending"));
        assert!(!a.news("x", "approved"));
        assert!(a.news("y", "pending"));
    }

    #[test]
    fn memory_is_bounded() {
        let mut a = Announced::default();
        for i in 0..KEEP + 10 {
            assert!(a.news(&i.to_string(), "denied"));
        }
        assert_eq!(a.decided.len(), KEEP);
        assert_eq!(a.order.len(), KEEP);
        assert!(a.news("0", "denied"), "the oldest was forgotten");
        assert!(!a.news(&(KEEP + 9).to_string(), "denied"));
    }
}
