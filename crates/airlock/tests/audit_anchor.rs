//! The audit anchor (invariant 10): the latest signed checkpoint is kept in the data directory,
//! written on a time cadence too, and `audit verify` holds the database to it. Rewriting the
//! database alone — an edit re-hashed through to the head with the checkpoint rows deleted, or
//! the newest records cut off with them — verifies on its own, and fails against the anchor.
mod support;
use support::*;

/// `db mode`: drops the tables' guard triggers, then `rewrite` (edit record 2, re-hash the chain
/// after it, delete every checkpoint) or `truncate` (delete records after 3 and every checkpoint).
const TAMPER: &str = r#"
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for (name,) in db.execute("select name from sqlite_master where type='trigger'").fetchall():
    db.execute(f"drop trigger {name}")
mode = sys.argv[2]
db.execute("delete from audit_checkpoints")
if mode == "rewrite":
    db.execute("update audit_records set body = cast(replace(cast(body as text), 'deny', 'allo') as blob) where seq = 2")
    prev = db.execute("select hash from audit_records where seq = 1").fetchone()[0]
    for seq, body in db.execute("select seq, body from audit_records where seq >= 2 order by seq").fetchall():
        h = hashlib.sha256(b"airlock-audit-v1" + seq.to_bytes(8, "big") + prev + body).digest()
        db.execute("update audit_records set prev_hash = ?, hash = ? where seq = ?", (prev, h, seq))
        prev = h
elif mode == "truncate":
    db.execute("delete from audit_records where seq > 3")
db.commit()
"#;

const RULES: &str = "[[agents]]\nname = \"a\"\nsecrets = []\n[[rules]]\nname = \"no\"\nhosts = [\"localhost\"]\n\
    action = \"deny\"\n[store]\ncheckpoint_interval = \"1s\"\n";

fn anchor_seq(gw: &Gateway) -> Option<u64> {
    let b = std::fs::read(gw.dir.path().join("airlock-data/audit-anchor.json")).ok()?;
    serde_json::from_slice::<serde_json::Value>(&b).ok()?["seq"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_fails_against_the_anchor_when_the_database_is_rewritten_or_cut_short() {
    for mode in ["rewrite", "truncate"] {
        let up = upstream(true).await;
        let mut gw = Gateway::start(&[&up], RULES, &[], &["a"]);
        let c = gw.client("a");
        for i in 0..5 {
            let r = c
                .get(format!("https://localhost:{}/{i}", up.port))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403);
        }
        // The time cadence signs the quiet log while the gateway runs (not only at 1,000
        // records or at shutdown), and the anchor follows.
        let mut anchored = None;
        for _ in 0..100 {
            anchored = anchor_seq(&gw).filter(|s| *s >= 5);
            if anchored.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(anchored.is_some(), "no anchor at seq 5 while serving:\n{}", gw.logs());
        gw.stop();
        let o = gw.cli(&["audit", "verify"]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("0 records after the last signed checkpoint"),
            "{}",
            text(&o)
        );

        let db = gw.dir.path().join("airlock-data/airlock.db");
        let (ok, out) = python(TAMPER, &[&db.to_string_lossy(), mode]);
        assert!(ok, "{out}");
        let o = gw.cli(&["audit", "verify"]);
        let said = text(&o);
        assert!(!o.status.success(), "{mode}: a rewritten database passed: {said}");
        let why = if mode == "rewrite" {
            "differs from its anchor"
        } else {
            "shorter than its anchor"
        };
        assert!(said.contains(why), "{mode}: {said}");
    }
}
