//! The README's first command: `airlock demo` runs end to end on a fresh machine.
mod support;
use support::*;

#[test]
fn demo_shows_allow_scrub_deny_exfiltration_and_a_verified_audit() {
    let o = std::process::Command::new(BIN).arg("demo").output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "→ 200 allow: {\"auth\":\"the real API key arrived\"",
        "{\"you_sent\":\"Bearer airlock-gmail\"}",
        "→ 403 deny: deleting mail is not allowed for agents",
        "→ 403 deny: exfiltration blocked",
        "→ 403 deny: denied by rule \"no schema changes\"",
        "audit verify: chain intact, 5 records",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    assert!(!t.contains("demo-real-key-"), "the real key was printed");
}
