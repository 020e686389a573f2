use airlock_core::approval::{Outcome, Pending, Refused, Requirement, Step, Vote};

fn req(rule: &str, roles: &[&str], quorum: u32) -> Requirement {
    Requirement {
        rule: rule.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        quorum,
    }
}

fn vote(person: &str, roles: &[&str], approve: bool, at_ms: u64) -> Vote {
    Vote {
        person: person.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        approve,
        channel: "cli".into(),
        at_ms,
    }
}

fn pending(reqs: Vec<Requirement>) -> Pending {
    Pending::new("a1".into(), "digest".into(), reqs, 1_000, 60_000)
}

fn waiting(s: Result<Step, (Pending, Refused)>) -> Pending {
    match s {
        Ok(Step::Waiting(p)) => p,
        other => panic!("expected waiting, got {other:?}"),
    }
}

fn decided(s: Result<Step, (Pending, Refused)>) -> Outcome {
    match s {
        Ok(Step::Decided(c)) => c.outcome,
        other => panic!("expected a decision, got {other:?}"),
    }
}

#[test]
fn quorum_counts_distinct_people_with_the_role() {
    let p = pending(vec![req("deploy", &["senior-engineer"], 2)]);
    let p = waiting(p.vote(vote("alice", &["senior-engineer"], true, 2_000)));
    // The same person twice does not make two.
    let (p, why) = p.vote(vote("alice", &["senior-engineer"], true, 2_100)).unwrap_err();
    assert_eq!(why, Refused::AlreadyVoted);
    // Someone without the role changes nothing.
    let (p, why) = p.vote(vote("mallory", &["intern"], true, 2_200)).unwrap_err();
    assert_eq!(why, Refused::NotEligible);
    assert_eq!(p.approvers(), vec!["alice"]);
    assert_eq!(
        decided(p.vote(vote("bob", &["senior-engineer", "owner"], true, 2_300))),
        Outcome::Approved
    );
}

#[test]
fn every_matching_rule_must_be_satisfied() {
    let p = pending(vec![req("mail", &["owner"], 1), req("external", &["security"], 1)]);
    let p = waiting(p.vote(vote("alice", &["owner"], true, 2_000)));
    assert_eq!(
        decided(p.vote(vote("sec", &["security"], true, 2_000))),
        Outcome::Approved
    );
    // One person holding both roles satisfies both.
    let p = pending(vec![req("mail", &["owner"], 1), req("external", &["security"], 1)]);
    assert_eq!(
        decided(p.vote(vote("both", &["owner", "security"], true, 2_000))),
        Outcome::Approved
    );
}

#[test]
fn any_eligible_deny_decides_and_time_runs_out() {
    let p = pending(vec![req("deploy", &["senior-engineer"], 2)]);
    let p = waiting(p.vote(vote("alice", &["senior-engineer"], true, 2_000)));
    assert_eq!(
        decided(p.vote(vote("bob", &["senior-engineer"], false, 2_500))),
        Outcome::Denied
    );

    let p = pending(vec![req("mail", &["owner"], 1)]);
    let p = p.expire(60_999).unwrap_err();
    let (p, why) = p.vote(vote("alice", &["owner"], true, 61_000)).unwrap_err();
    assert_eq!(why, Refused::Expired);
    let closed = p.expire(61_000).unwrap();
    assert_eq!(closed.outcome, Outcome::Expired);
    assert_eq!(pending(vec![]).abandon(5).outcome, Outcome::Abandoned);
}
