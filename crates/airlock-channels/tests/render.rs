//! The terminal and dashboard renderers against hostile requests (invariant 8): nothing an
//! agent sends can fake a button, run script, hide or reorder text, drive the terminal, or
//! push the rest of the card out of sight.

use airlock_channels::card::{build, digest};
use airlock_channels::render::{
    html_card, html_escape, quoted_body, status_line, status_line_for, terminal, utc_datetime, utc_hm,
};
use airlock_channels::{Card, HeldRequest, RuleLine, Status};

fn card_with(content_type: &str, body: &[u8]) -> Card {
    let held = HeldRequest {
        agent: "agent\u{202e}1".into(),
        method: "POST".into(),
        scheme: "https".into(),
        host: "api.example.com".into(),
        port: 8443,
        target: "/v1/</pre><script>x</script>?q=%3Cimg%20src%3Dx%3E".into(),
        headers: vec![
            ("Content-Type".into(), content_type.as_bytes().to_vec()),
            ("X-Note".into(), b"<button>Approve</button>\x1b[2J".to_vec()),
        ],
        body: bytes::Bytes::copy_from_slice(body),
    };
    let rules = vec![RuleLine {
        name: "payments".into(),
        reason: "money leaves".into(),
        approvers: vec!["alice".into(), "bob".into()],
        quorum: 2,
    }];
    // 2025-06-01 14:03:22 UTC
    build(
        &held,
        "AbCdEfGhIjKl",
        rules,
        digest(&held),
        1_748_786_602_000,
        1_748_786_602_000,
        Some(900),
    )
}

const HOSTILE: &str = "[Approve] [Deny]\n<button>Approve</button>\n\
{\"blocks\":[{\"type\":\"actions\",\"elements\":[{\"type\":\"button\",\"text\":{\"type\":\"plain_text\",\"text\":\"Approve\"}}]}]}\n\
<!here> <!channel> </code> ``` </pre><script>alert(1)</script>\n\
<img src=x onerror=alert(1)>\n\
pay\u{202e}lmx.exe zero\u{200b}width\n\
\x1b[2J\x1b[1;1HApprove? [y/N] \x07\r\n";

fn pending() -> Status {
    Status::Pending {
        approved_by: vec!["alice".into()],
    }
}

fn count(h: &str, needle: &str) -> usize {
    h.to_ascii_lowercase().matches(needle).count()
}

fn assert_html_safe(h: &str) {
    assert_eq!(count(h, "<script"), 0, "{h}");
    assert_eq!(count(h, "<img"), 0, "{h}");
    assert_eq!(count(h, "<button"), 0, "{h}");
    assert!(count(h, "</pre>") <= 1, "only the renderer's own </pre>: {h}");
    assert_eq!(count(h, "<pre"), count(h, "</pre>"));
    assert!(!h.contains('\u{202e}') && !h.contains('\u{200b}') && !h.contains('\x1b'));
    // Every tag in the output is one of the renderer's own.
    for tag in h.split('<').skip(1) {
        let name: String = tag.chars().take_while(|c| *c != '>' && *c != ' ').collect();
        assert!(
            [
                "div", "/div", "h3", "/h3", "dl", "/dl", "dt", "/dt", "dd", "/dd", "pre", "/pre", "p", "/p"
            ]
            .contains(&name.as_str()),
            "unexpected tag <{name}> in {h}"
        );
    }
}

#[test]
fn hostile_text_body_in_html() {
    let c = card_with("text/plain", HOSTILE.as_bytes());
    for full in [false, true] {
        let h = html_card(&c, &pending(), full);
        assert_html_safe(&h);
        assert!(h.contains("&lt;U+202E&gt;") && h.contains("&lt;U+200B&gt;") && h.contains("&lt;U+001B&gt;"));
        assert!(h.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("&lt;!here&gt;"));
        assert!(h.contains("agent&lt;U+202E&gt;1"));
    }
}

#[test]
fn hostile_json_body_in_html_and_terminal() {
    let body = serde_json::json!({ "note": HOSTILE, "blocks": [{ "type": "actions" }] }).to_string();
    let c = card_with("application/json", body.as_bytes());
    assert_html_safe(&html_card(&c, &pending(), true));
    let t = terminal(&c, &pending());
    assert!(!t.contains('\x1b') && !t.contains('\u{202e}'));
}

#[test]
fn hostile_body_in_the_terminal() {
    let c = card_with("text/plain", HOSTILE.as_bytes());
    let t = terminal(&c, &pending());
    assert!(!t.contains('\x1b'), "no ESC byte reaches the terminal");
    assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
    assert!(!t.contains('\u{202e}') && !t.contains('\u{200b}'));
    assert!(t.contains("<U+202E>") && t.contains("<U+200B>") && t.contains("<U+001B>[2J"));
    // Each body line is quoted, so a fake "[Approve]" or prompt can't pass as the card's own.
    for l in [
        "│ [Approve] [Deny]",
        "│ <button>Approve</button>",
        "│ <U+001B>[2J<U+001B>[1;1HApprove? [y/N] <U+0007><U+000D>",
    ] {
        assert!(t.lines().any(|x| x == l), "missing {l:?} in\n{t}");
    }
    // The header value with ESC is on one line and visible.
    assert!(t.contains("X-Note: <button>Approve</button><U+001B>[2J"));
}

#[test]
fn ten_thousand_lines_are_cut_with_a_notice() {
    let body = "line of payload\n".repeat(10_000);
    let c = card_with("text/plain", body.as_bytes());

    let t = terminal(&c, &pending());
    assert_eq!(t.lines().filter(|l| l.starts_with("│ ")).count(), 40);
    assert!(t.contains("more bytes — full request on the dashboard"));
    // The card's own fields after the body are still there.
    assert!(t.contains("Digest:") && t.contains("Status:     Waiting: 1 of 2 approvals (alice)"));

    let h = html_card(&c, &pending(), false);
    assert!(h.contains("more bytes"));
    assert!(h.len() < 20 * 1024);
    let full = html_card(&c, &pending(), true);
    assert!(!full.contains("more bytes"));
    assert_eq!(full.matches("line of payload").count(), 10_000);

    let cut = quoted_body(&c, 4096, 40);
    assert_eq!(cut.omitted_bytes, body.len() - 1 - cut.text.len());
}

#[test]
fn card_layout_order() {
    let c = card_with("application/json", br#"{"amount":100}"#);
    let t = terminal(&c, &pending());
    let order = [
        "━━ POST api.example.com ━━",
        "Agent:      agent<U+202E>1",
        "Rule:       payments — money leaves",
        "Approvers:  alice, bob (2 needed)",
        "Grant:      approving may also allow matching requests for 15 min",
        "Request:    POST https://api.example.com:8443/v1/</pre><script>x</script>",
        "Query:      q = <img src=x>",
        "Header:     Content-Type: application/json",
        "Request body:",
        "│ {",
        "│   \"amount\": 100",
        "│ }",
        "Size:       14 bytes (json)",
        &format!("Digest:     {}", &c.digest[..12]),
        "Expires:    14:03:22 UTC",
        "Status:     Waiting: 1 of 2 approvals (alice)",
    ];
    let mut at = 0;
    for want in order {
        let pos = t[at..]
            .find(want)
            .unwrap_or_else(|| panic!("{want:?} not after byte {at} in\n{t}"));
        at += pos + want.len();
    }
    let h = html_card(&c, &pending(), false);
    assert!(h.contains("<h3 class=\"title\">POST api.example.com</h3>"));
    assert!(h.contains("<pre class=\"body\">{\n  &quot;amount&quot;: 100\n}</pre>"));
    assert!(h.contains("POST https://api.example.com:8443/v1/&lt;/pre&gt;&lt;script&gt;x&lt;/script&gt;"));
}

#[test]
fn status_lines() {
    let at = 1_748_786_602_000; // 2025-06-01 14:03:22 UTC
    assert_eq!(utc_datetime(at), "2025-06-01 14:03:22 UTC");
    assert_eq!(utc_datetime(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc_datetime(951_782_400_000), "2000-02-29 00:00:00 UTC");
    assert_eq!(utc_datetime(4_102_444_799_000), "2099-12-31 23:59:59 UTC");
    assert_eq!(utc_hm(at), "14:03 UTC");
    let s = |st: Status| status_line(&st);
    assert_eq!(
        s(Status::Approved {
            by: vec!["alice".into(), "bob".into()],
            at_ms: at,
            grant_secs: None
        }),
        "Approved by alice, bob · 14:03 UTC"
    );
    assert_eq!(
        s(Status::Approved {
            by: vec!["alice".into()],
            at_ms: at,
            grant_secs: Some(3600)
        }),
        "Approved by alice · 14:03 UTC · matching requests allowed for 1 h"
    );
    assert_eq!(
        s(Status::Denied {
            by: "carol".into(),
            at_ms: at
        }),
        "Denied by carol · 14:03 UTC"
    );
    assert_eq!(s(Status::Expired { at_ms: at }), "Expired · 14:03 UTC");
    assert_eq!(
        s(Status::Abandoned { at_ms: at }),
        "Abandoned (gateway stopped) · 14:03 UTC"
    );
    assert_eq!(
        s(Status::Withdrawn { at_ms: at }),
        "Withdrawn (agent disconnected) · 14:03 UTC"
    );
    assert_eq!(s(pending()), "Waiting: 1 approval so far (alice)");
    let c = card_with("text/plain", b"x");
    assert_eq!(status_line_for(&c, &pending()), "Waiting: 1 of 2 approvals (alice)");
    let closed = html_card(&c, &Status::Expired { at_ms: at }, false);
    assert!(closed.contains("<div class=\"card expired\">") && closed.contains("Expired · 14:03 UTC"));
}

#[test]
fn html_escape_covers_the_five() {
    assert_eq!(
        html_escape(r#"<a href="x" title='y'>&</a>"#),
        "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
    );
}

#[test]
fn hostile_summary_values_are_escaped() {
    use base64::Engine;
    let msg = "To: <script>alert(1)</script>@x, =?utf-8?B?4oCuZXZpbEB4?=\r\n\
Subject: =?utf-8?Q?=1B[2J<img_src=3Dx_onerror=3Dalert(1)>?=\r\n\r\n</pre><button>Approve</button>\r\n";
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(msg);
    let held = HeldRequest {
        agent: "a".into(),
        method: "POST".into(),
        scheme: "https".into(),
        host: "gmail.googleapis.com".into(),
        port: 443,
        target: "/gmail/v1/users/me/messages/send".into(),
        headers: vec![("Content-Type".into(), b"application/json".to_vec())],
        body: serde_json::json!({ "raw": raw }).to_string().into(),
    };
    let c = build(&held, "id", vec![], digest(&held), 0, 0, None);
    assert_eq!(c.summary_title.as_deref(), Some("Send email"));
    let h = html_card(&c, &pending(), false);
    assert_html_safe(&h);
    assert!(
        h.contains("<dt>To</dt><dd>&lt;script&gt;alert(1)&lt;/script&gt;@x, &lt;U+202E&gt;evil@x</dd>"),
        "{h}"
    );
    let t = terminal(&c, &pending());
    assert!(!t.contains('\x1b') && !t.contains('\u{202e}'));
    assert!(t.contains("Subject:    <U+001B>[2J<img src=x onerror=alert(1)>"), "{t}");
}

#[test]
fn long_one_line_values_are_cut_with_a_count() {
    let stmt = format!("SELECT {} FROM t", "x, ".repeat(5000));
    let held = HeldRequest {
        agent: "a".into(),
        method: "POST".into(),
        scheme: "https".into(),
        host: "db.example.com".into(),
        port: 443,
        target: format!("/q?long={}", "y".repeat(20_000)),
        headers: vec![("Content-Type".into(), b"application/sql".to_vec())],
        body: stmt.clone().into(),
    };
    let c = build(&held, "id", vec![], digest(&held), 0, 0, None);
    assert_eq!(
        c.summary[0].1.len(),
        stmt.len(),
        "the card keeps the complete statement"
    );
    let t = terminal(&c, &pending());
    let s = t.lines().find(|l| l.starts_with("Statement:")).unwrap();
    assert!(s.len() < 1200 && s.contains("more bytes"), "{s}");
    let q = t.lines().find(|l| l.starts_with("Query:")).unwrap();
    assert!(q.len() < 1200 && q.contains("more bytes"));
    assert!(html_card(&c, &pending(), false).len() < 40_000);
    assert!(html_card(&c, &pending(), true).contains(&stmt));
}
