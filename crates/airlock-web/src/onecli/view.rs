//! A held request as the SDK's `ApprovalRequest`, built from the gateway's own card (its parse
//! of the held bytes, credentials redacted): NanoClaw's card shows what will really be sent.

use airlock_approvals::ApprovalView;
use serde_json::{Value, json};

use super::time::iso8601;

/// Characters of the body text a preview carries; the rest is counted, never dropped silently.
const PREVIEW_BODY_CHARS: usize = 1000;

pub(crate) fn request(v: &ApprovalView) -> Value {
    let c = &v.card;
    let default_port = matches!((c.scheme.as_str(), c.port), ("https", 443) | ("http", 80));
    let authority = match default_port {
        true => c.host.clone(),
        false => format!("{}:{}", c.host, c.port),
    };
    let query: Vec<String> = c.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let url = match query.is_empty() {
        true => format!("{}://{authority}{}", c.scheme, c.path),
        false => format!("{}://{authority}{}?{}", c.scheme, c.path, query.join("&")),
    };
    let mut headers = serde_json::Map::new();
    for (k, val) in &c.headers {
        let joined = match headers.get(k).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {val}"),
            None => val.clone(),
        };
        headers.insert(k.clone(), joined.into());
    }
    let action = c
        .summary_title
        .clone()
        .unwrap_or_else(|| format!("{} {}{}", c.method, c.host, c.path));
    let mut details: Vec<(String, String)> = c.summary.clone();
    for r in &c.rules {
        details.push(("Rule".into(), format!("{}: {}", r.name, r.reason)));
    }
    details.push(("Digest".into(), c.short_digest().to_string()));
    let mut preview = vec![action.clone()];
    preview.extend(details.iter().map(|(l, v)| format!("{l}: {v}")));
    if !c.body.text.is_empty() {
        preview.push(String::new());
        preview.push(truncated(&c.body.text, PREVIEW_BODY_CHARS));
    }
    json!({
        "id": c.id,
        "method": c.method,
        "url": url,
        "host": c.host,
        "path": c.path,
        "headers": headers,
        "bodyPreview": preview.join("\n"),
        "summary": {
            "action": action,
            "details": details.iter().map(|(l, v)| json!({ "label": l, "value": v })).collect::<Vec<_>>(),
        },
        "agent": { "id": c.agent, "name": c.agent, "externalId": c.agent },
        "createdAt": iso8601(c.created_ms),
        "expiresAt": iso8601(c.expires_ms),
        "timeoutSeconds": c.expires_ms.saturating_sub(c.created_ms) / 1000,
    })
}

/// The first `max` characters, and how many more there were.
fn truncated(s: &str, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({} more characters)", total - max)
}
