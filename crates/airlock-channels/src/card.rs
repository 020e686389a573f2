//! Builds the approval [`Card`] from the gateway's own parse of a held request, and the digest
//! that binds an approval to exactly the bytes that will be forwarded.
//!
//! Everything here reads agent-controlled bytes: nothing may panic, and nothing the agent sent
//! may be silently dropped from what the approver sees (invariant 8). Summaries are a reading
//! aid on top of the complete body, never a replacement for it.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use crate::text::one_line;
use crate::{BodyKind, Card, Decoding, HeldRequest, RuleLine};

mod aws;
mod body;
mod content;
mod github;
mod mail;

pub use content::{BINARY_RATIO, MAX_CODINGS, MAX_DECODED_BYTES, Unshowable, showable};

/// Most headers a card lists; a line says how many more were left out.
pub const MAX_HEADERS: usize = 30;
/// Characters of decoded content (an email's text, a file written to GitHub) shown in a
/// summary line; the rest is counted.
pub const PREVIEW_CHARS: usize = 300;

/// Hex SHA-256 over method, URL (scheme://host:port + target), every header (name, value, in
/// order) and the body, each field length-prefixed (u64 BE) so no two different requests share
/// an encoding.
pub fn digest(held: &HeldRequest) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(held.method.as_bytes());
    field(format!("{}://{}:{}{}", held.scheme, held.host, held.port, held.target).as_bytes());
    // The header count is prefixed too, so headers can never be confused with the body.
    field(&(held.headers.len() as u64).to_be_bytes());
    for (name, value) in &held.headers {
        field(name.as_bytes());
        field(value);
    }
    field(&held.body);
    hex::encode(h.finalize())
}

/// Builds the card from the gateway's own parse of the held request.
pub fn build(
    held: &HeldRequest,
    id: &str,
    rules: Vec<RuleLine>,
    digest: String,
    created_ms: u64,
    expires_ms: u64,
    grant_secs: Option<u64>,
) -> Card {
    let (path, raw_query) = split_target(&held.target);
    let query = decode_query(raw_query);
    let content_type = header(held, "content-type").map(|v| String::from_utf8_lossy(v).into_owned());
    // The server reads the decoded body, so that is what approvers see; what cannot be
    // decoded is shown as sent, with the reason (the gateway denies it before holding, see
    // [`showable`]).
    let (content, undecodable) = match content::decode(&held.headers, &held.body) {
        Ok(d) => (d, None),
        Err(e) => (
            content::Decoded {
                bytes: Cow::Borrowed(&held.body[..]),
                codings: Vec::new(),
            },
            Some(e),
        ),
    };
    let mut parsed = body::parse(content_type, &content.bytes);
    parsed.view.size = held.body.len();
    if !content.codings.is_empty() {
        parsed.view.decoded = Some(Decoding {
            encoding: one_line(&content.codings.join(", ")),
            size: content.bytes.len(),
        });
    }

    let req = Req {
        method: held.method.to_ascii_uppercase(),
        host: &held.host,
        path,
        segments: segments(path),
        body: &content.bytes,
        parsed: &parsed,
    };
    let (summary_title, mut summary) = match mail::summarize(&req)
        .or_else(|| github::summarize(&req))
        .or_else(|| aws::summarize(held, &content.bytes))
        .or_else(|| statement_summary(&parsed))
    {
        Some((title, lines)) => (Some(one_line(&title)), lines),
        None => (None, Vec::new()),
    };
    if parsed.duplicate_keys {
        // serde_json keeps the last duplicate; the service may read the first.
        summary.push((
            "Warning".into(),
            "the JSON body repeats a key: the service may read a different value than the one summarised here".into(),
        ));
    }
    if let Some(d) = &parsed.view.decoded {
        summary.push((
            "Encoding".into(),
            format!(
                "sent compressed ({}, {} bytes); shown decoded ({} bytes)",
                d.encoding,
                held.body.len(),
                d.size
            ),
        ));
    }
    if let Some(e) = undecodable {
        summary.push(("Warning".into(), format!("{e}; it is shown as sent, not decoded")));
    }
    if parsed.invalid_bytes > 0 {
        summary.push((
            "Warning".into(),
            format!(
                "the body is not valid UTF-8: {} byte{} shown as <0xNN>",
                parsed.invalid_bytes,
                if parsed.invalid_bytes == 1 { " is" } else { "s are" }
            ),
        ));
    }

    Card {
        id: id.to_string(),
        agent: held.agent.clone(),
        rules,
        method: held.method.clone(),
        scheme: held.scheme.clone(),
        host: held.host.clone(),
        port: held.port,
        path: path.to_string(),
        query,
        headers: select_headers(&held.headers),
        body: parsed.view,
        summary_title,
        summary,
        digest,
        created_ms,
        expires_ms,
        grant_secs,
    }
}

/// What the summarisers look at: the gateway's own reading of the request.
struct Req<'a> {
    /// Upper-cased.
    method: String,
    host: &'a str,
    /// As sent.
    path: &'a str,
    /// Path segments, percent-decoded, empty ones dropped: the service decodes them too, so a
    /// disguised `%73end` must still be recognised as `send`.
    segments: Vec<String>,
    body: &'a [u8],
    parsed: &'a body::Parsed,
}

/// Splits the request target into path and raw query; an absolute-form target
/// (`http://host/path`) keeps only its path.
fn split_target(target: &str) -> (&str, &str) {
    let mut t = target;
    for scheme in ["http://", "https://"] {
        if t.get(..scheme.len()).is_some_and(|p| p.eq_ignore_ascii_case(scheme)) {
            let rest = &t[scheme.len()..];
            t = rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
            break;
        }
    }
    t.split_once('?').unwrap_or((t, ""))
}

/// Form/query decoding: `+` is a space, then percent-decoding (invalid UTF-8 shown lossily).
pub(crate) fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Decoded query pairs in order, folded to one line each (a decoded `%0A` must not start a
/// fake line on the card).
fn decode_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (one_line(&form_decode(k)), one_line(&form_decode(v)))
        })
        .collect()
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

fn header<'a>(held: &'a HeldRequest, name: &str) -> Option<&'a [u8]> {
    held.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Connection-level headers (and Host, already in the URL line) say nothing about the action.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "host",
];

/// Header names whose values are credentials or session state. Held requests carry
/// placeholders, but a card is shown on chat platforms, so even those stay off it.
const SECRET_NAMES: &[&str] = &[
    "token",
    "secret",
    "key",
    "auth",
    "cookie",
    "password",
    "session",
    "signature",
    "credential",
];

/// True when a header's value must be shown as `[redacted]`.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || SECRET_NAMES.iter().any(|w| n.contains(w))
}

fn select_headers(headers: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut left_out = 0usize;
    for (name, value) in headers {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        if kept.len() == MAX_HEADERS {
            left_out += 1;
            continue;
        }
        let value = if is_secret_header(name) {
            "[redacted]".to_string()
        } else {
            one_line(&String::from_utf8_lossy(value))
        };
        kept.push((one_line(name), value));
    }
    if left_out > 0 {
        // "…" is not a valid header name, so the agent cannot fake this line.
        kept.push(("…".into(), format!("{left_out} more headers not shown")));
    }
    kept
}

/// The start of a decoded text on one line, whitespace runs folded, with a count of the rest.
fn preview(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let flat = words.join(" ");
    let n = flat.chars().count();
    let mut shown: String = flat.chars().take(PREVIEW_CHARS).collect();
    if n > PREVIEW_CHARS {
        shown.push_str(&format!(" … ({} more characters)", n - PREVIEW_CHARS));
    }
    one_line(&shown)
}

fn statement_summary(parsed: &body::Parsed) -> Option<(String, Vec<(String, String)>)> {
    match parsed.view.kind {
        BodyKind::Sql => {
            let mut lines = vec![("Statement".to_string(), one_line(parsed.statement.as_deref()?.trim()))];
            if let Some(p) = &parsed.sql_params {
                lines.push(("Parameters".into(), one_line(p)));
            }
            Some(("SQL statement".into(), lines))
        }
        BodyKind::Graphql => {
            let q = parsed.graphql.as_deref()?.trim();
            let kind = body::graphql_operation(q);
            Some((format!("GraphQL {kind}"), vec![("Operation".into(), one_line(q))]))
        }
        _ => None,
    }
}
