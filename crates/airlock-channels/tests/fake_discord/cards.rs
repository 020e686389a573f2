//! What a Discord message must look like to an approver: every text inert (markdown only
//! inside code, where Discord renders nothing, or backslash-escaped), no hidden characters,
//! and exactly our buttons.

use airlock_channels::Buttons;
use airlock_channels::text::is_deceptive;
use serde_json::Value;

/// Texts Discord renders as markdown: (where, text).
pub fn markdown_texts(msg: &Value) -> Vec<(String, String)> {
    let mut out = vec![];
    if let Some(c) = msg["content"].as_str() {
        out.push(("content".into(), c.to_string()));
    }
    for (i, e) in msg["embeds"].as_array().into_iter().flatten().enumerate() {
        for key in ["title", "description"] {
            if let Some(t) = e[key].as_str() {
                out.push((format!("embeds[{i}].{key}"), t.to_string()));
            }
        }
        for (j, f) in e["fields"].as_array().into_iter().flatten().enumerate() {
            for key in ["name", "value"] {
                out.push((format!("fields[{j}].{key}"), f[key].as_str().unwrap_or("").to_string()));
            }
        }
    }
    out
}

/// Every text of a message, markdown or not (footers and button labels are plain).
pub fn all_texts(msg: &Value) -> Vec<String> {
    let mut out: Vec<String> = markdown_texts(msg).into_iter().map(|(_, t)| t).collect();
    for e in msg["embeds"].as_array().into_iter().flatten() {
        if let Some(t) = e["footer"]["text"].as_str() {
            out.push(t.to_string());
        }
    }
    for b in buttons_of(msg) {
        out.push(b["label"].as_str().unwrap_or("").to_string());
    }
    out
}

/// Text as the approver reads it: escapes and code delimiters removed.
pub fn rendered(msg: &Value) -> String {
    let mut out = String::new();
    for t in all_texts(msg) {
        let t = t.replace("```", "");
        let mut chars = t.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek().is_some_and(|n| n.is_ascii_punctuation()) => {
                    out.extend(chars.next());
                }
                '`' => {}
                c => out.push(c),
            }
        }
        out.push('\n');
    }
    out
}

/// Splits markdown into (outside code, inside code) parts; panics on an unclosed code span.
fn split_code(t: &str) -> (String, Vec<(bool, String)>) {
    let mut outside = String::new();
    let mut inside = vec![];
    let mut rest = t;
    loop {
        if let Some(after) = rest.strip_prefix("```") {
            let end = after
                .find("```")
                .unwrap_or_else(|| panic!("unclosed code block in {t}"));
            inside.push((true, after[..end].to_string()));
            rest = &after[end + 3..];
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        if c == '\\' {
            // An escape: keep both characters outside.
            let mut it = rest.chars();
            outside.push(it.next().unwrap_or_default());
            if let Some(n) = it.next() {
                outside.push(n);
            }
            rest = it.as_str();
            continue;
        }
        if c == '`' {
            let after = &rest[1..];
            let end = after.find('`').unwrap_or_else(|| panic!("unclosed code span in {t}"));
            inside.push((false, after[..end].to_string()));
            rest = &after[end + 1..];
            continue;
        }
        outside.push(c);
        rest = &rest[c.len_utf8()..];
    }
    (outside, inside)
}

/// No markdown, mention, link or emoji syntax outside code; nothing inside code that could
/// close it; no hidden characters anywhere; `allowed_mentions` pings nobody.
pub fn assert_inert(msg: &Value) {
    assert_eq!(msg["allowed_mentions"]["parse"], serde_json::json!([]), "{msg}");
    for t in all_texts(msg) {
        assert!(!t.chars().any(is_deceptive), "hidden character in {t:?}");
    }
    for (at, t) in markdown_texts(msg) {
        if t == "*No body*" {
            continue;
        }
        let (outside, inside) = split_code(&t);
        let mut chars = outside.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let n = chars.next();
                assert!(
                    n.is_some_and(|n| n.is_ascii_punctuation()),
                    "stray backslash in {at}: {t}"
                );
            } else {
                assert!(!c.is_ascii_punctuation(), "unescaped {c:?} in {at}: {t}");
            }
        }
        for (block, code) in inside {
            // A block ends only at ```; a span at any backtick.
            let closer = if block { "```" } else { "`" };
            assert!(!code.contains(closer), "code could be closed from inside in {at}: {t}");
        }
    }
}

pub fn buttons_of(msg: &Value) -> Vec<Value> {
    msg["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Exactly our buttons, in one row: (label, style, custom_id).
pub fn assert_our_buttons(msg: &Value, b: &Buttons, grant_label: &str) {
    assert_eq!(msg["components"].as_array().map(Vec::len), Some(1), "one action row");
    let found: Vec<(String, u64, String)> = buttons_of(msg)
        .iter()
        .map(|b| {
            (
                b["label"].as_str().unwrap_or("").to_string(),
                b["style"].as_u64().unwrap_or(0),
                b["custom_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut want = vec![
        ("Approve".to_string(), 3, b.approve.clone()),
        ("Deny".to_string(), 4, b.deny.clone()),
    ];
    if let Some(g) = &b.grant {
        want.push((grant_label.to_string(), 1, g.clone()));
    }
    assert_eq!(found, want);
}
