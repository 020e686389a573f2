//! The approval state machine (invariants 5 and 7): a held request waits for people with
//! the required roles. Transitions consume the state, so a decided approval cannot be
//! voted on again; time and the voter's identity are arguments.
//!
//! - Every requirement (one per matching `approve` rule) needs `quorum` distinct people
//!   holding one of its roles to approve.
//! - Any eligible person's deny decides at once: denied.
//! - A vote from someone holding none of the roles changes nothing and is refused.
//! - One vote per person; at or after the deadline only expiry is possible.

use serde::Serialize;

/// What one `approve` rule demands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub rule: String,
    /// Roles whose holders may vote.
    pub roles: Vec<String>,
    /// Distinct approvers needed (at least 1).
    pub quorum: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vote {
    pub person: String,
    /// The roles the person holds (from the operator's config, never from the platform).
    pub roles: Vec<String>,
    pub approve: bool,
    /// Where the vote came from: "slack", "dashboard", "cli", …
    pub channel: String,
    pub at_ms: u64,
}

/// A request waiting for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub id: String,
    /// Digest of the exact request shown and to be forwarded.
    pub digest: String,
    pub requirements: Vec<Requirement>,
    pub votes: Vec<Vote>,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// How an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Approved,
    Denied,
    Expired,
    /// The gateway holding it restarted or died: never forwarded.
    Abandoned,
}

/// A decided approval; only `Approved` may release the held request, and only once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closed {
    pub pending: Pending,
    pub outcome: Outcome,
    pub at_ms: u64,
}

/// The result of a vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Counted; more votes are needed.
    Waiting(Pending),
    Decided(Closed),
}

/// Why a vote changed nothing. The approval is handed back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// The person holds none of the roles any requirement names.
    NotEligible,
    /// The person already voted.
    AlreadyVoted,
    /// The deadline has passed: call [`Pending::expire`].
    Expired,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::NotEligible => "you do not hold a role that may decide this request",
            Refused::AlreadyVoted => "you already voted on this request",
            Refused::Expired => "this request has expired",
        }
    }
}

impl Requirement {
    fn admits(&self, v: &Vote) -> bool {
        v.roles.iter().any(|r| self.roles.contains(r))
    }

    fn met(&self, votes: &[Vote]) -> bool {
        let approvers = votes.iter().filter(|v| v.approve && self.admits(v)).count();
        approvers >= self.quorum.max(1) as usize
    }
}

impl Pending {
    pub fn new(id: String, digest: String, requirements: Vec<Requirement>, now_ms: u64, timeout_ms: u64) -> Pending {
        Pending {
            id,
            digest,
            requirements,
            votes: Vec::new(),
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(timeout_ms),
        }
    }

    /// Whether `roles` may vote on this approval at all.
    pub fn eligible(&self, roles: &[String]) -> bool {
        self.requirements
            .iter()
            .any(|r| r.roles.iter().any(|x| roles.contains(x)))
    }

    /// Records a vote. On refusal the approval comes back untouched with the reason.
    pub fn vote(self, vote: Vote) -> Result<Step, (Pending, Refused)> {
        if vote.at_ms >= self.expires_ms {
            return Err((self, Refused::Expired));
        }
        if !self.eligible(&vote.roles) {
            return Err((self, Refused::NotEligible));
        }
        if self.votes.iter().any(|v| v.person == vote.person) {
            return Err((self, Refused::AlreadyVoted));
        }
        let (approve, at_ms) = (vote.approve, vote.at_ms);
        let mut p = self;
        p.votes.push(vote);
        Ok(if !approve {
            Step::Decided(p.close(Outcome::Denied, at_ms))
        } else if p.requirements.iter().all(|r| r.met(&p.votes)) {
            Step::Decided(p.close(Outcome::Approved, at_ms))
        } else {
            Step::Waiting(p)
        })
    }

    /// At or after the deadline: expired. Before it: still pending.
    pub fn expire(self, now_ms: u64) -> Result<Closed, Pending> {
        if now_ms >= self.expires_ms {
            Ok(self.close(Outcome::Expired, now_ms))
        } else {
            Err(self)
        }
    }

    /// The gateway holding the request is gone: it must never be forwarded.
    pub fn abandon(self, now_ms: u64) -> Closed {
        self.close(Outcome::Abandoned, now_ms)
    }

    fn close(self, outcome: Outcome, at_ms: u64) -> Closed {
        Closed {
            pending: self,
            outcome,
            at_ms,
        }
    }

    /// People who approved so far, in voting order.
    pub fn approvers(&self) -> Vec<&str> {
        self.votes
            .iter()
            .filter(|v| v.approve)
            .map(|v| v.person.as_str())
            .collect()
    }
}
