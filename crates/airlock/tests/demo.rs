//! The README's first command: `airlock demo` runs end to end on a fresh machine.
mod support;
use support::*;

#[test]
fn demo_shows_allow_scrub_deny_exfiltration_and_a_verified_audit() {
    let o = std::process::Command::new(BIN)
        .args(["demo", "--yes"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "→ 200 allow: {\"auth\":\"the real API key arrived\"",
        "{\"you_sent\":\"Bearer airlock-gmail\"}",
        "→ 403 deny: deleting mail is not allowed for agents",
        "→ 403 deny: exfiltration blocked",
        "→ 403 deny: denied by rule \"no schema changes\"",
        // The send is held, its card shown in the terminal, approved, then forwarded.
        "held for approval",
        "━━ Send email ━━",
        "To:         bob@example.com",
        "--yes: approving as alice without asking.",
        "→ 200 allow: {\"id\":\"sent-1\"",
        "audit verify: chain intact, 10 records",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    assert!(!t.contains("demo-real-key-"), "the real key was printed");
}

#[test]
fn without_an_answer_the_demo_denies_the_send() {
    let o = std::process::Command::new(BIN)
        .arg("demo")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Approve as alice? [y/N]"), "{t}");
    assert!(t.contains("denied by alice"), "{t}");
    assert!(!t.contains("sent-1"), "{t}");
}
