//! What the body is (JSON, form, GraphQL, SQL, text, binary) and its complete readable text.
//!
//! JSON is re-indented token by token rather than through `serde_json::Value`, because a
//! `Value` round trip would show the approver something other than what is forwarded: it drops
//! repeated keys, reorders keys, rewrites string escapes and rounds big numbers.

use serde_json::Value;

use crate::text::one_line;
use crate::{BodyKind, BodyView};

pub use super::content::HEX_PREVIEW;

pub(super) struct Parsed {
    pub view: BodyView,
    /// The body parsed as JSON (last duplicate key wins), for summaries.
    pub json: Option<Value>,
    /// Some object in the JSON body repeats a key.
    pub duplicate_keys: bool,
    /// The SQL statement, when the kind is Sql.
    pub statement: Option<String>,
    /// Bound parameters sent next to a JSON-wrapped statement, as compact JSON.
    pub sql_params: Option<String>,
    /// The GraphQL document, when the kind is Graphql.
    pub graphql: Option<String>,
    /// Bytes that are not valid UTF-8, shown in the text as `<0xNN>`.
    pub invalid_bytes: usize,
}

/// The lower-cased media type without parameters.
pub(super) fn essence(content_type: Option<&str>) -> String {
    content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub(super) fn parse(content_type: Option<String>, body: &[u8]) -> Parsed {
    let mime = essence(content_type.as_deref());
    let mut p = Parsed {
        view: BodyView {
            content_type,
            kind: BodyKind::Empty,
            size: body.len(),
            text: String::new(),
            decoded: None,
        },
        json: None,
        duplicate_keys: false,
        statement: None,
        sql_params: None,
        graphql: None,
        invalid_bytes: 0,
    };
    if body.is_empty() {
        return p;
    }
    // Text with a few invalid bytes is still text: they are marked, and the summaries read
    // the rest. Only binary data falls back to hex.
    let Some((text, invalid)) = super::content::lossy_text(body) else {
        p.view.kind = BodyKind::Binary;
        p.view.text = hex_preview(body);
        return p;
    };
    p.invalid_bytes = invalid;
    let s = text.as_ref();
    p.view.text = s.to_string();
    p.view.kind = BodyKind::Text;
    match mime.as_str() {
        "application/graphql" => {
            p.view.kind = BodyKind::Graphql;
            p.graphql = Some(s.to_string());
            return p;
        }
        "application/sql" | "application/x-sql" | "text/sql" | "text/x-sql" => {
            p.view.kind = BodyKind::Sql;
            p.statement = Some(s.to_string());
            return p;
        }
        "application/x-www-form-urlencoded" => {
            p.view.kind = BodyKind::Form;
            p.view.text = form_lines(s);
            return p;
        }
        _ => {}
    }
    let jsonish = mime.ends_with("/json") || mime.ends_with("+json");
    let first = s.trim_start().bytes().next();
    if (jsonish || matches!(first, Some(b'{' | b'['))) && parse_json(s, &mut p) {
        return p;
    }
    if looks_like_sql(s) {
        p.view.kind = BodyKind::Sql;
        p.statement = Some(s.to_string());
    }
    p
}

/// Fills `p` from a JSON body; false when `s` is not JSON.
fn parse_json(s: &str, p: &mut Parsed) -> bool {
    // serde_json bounds nesting (128), so hostile depth is an error, not a stack overflow.
    let Ok(v) = serde_json::from_str::<Value>(s) else {
        return false;
    };
    p.duplicate_keys = members_on_wire(s) != members_in_value(&v, 0);
    p.view.kind = BodyKind::Json;
    p.view.text = pretty(s);
    if let Some(q) = graphql_document(&v) {
        p.view.kind = BodyKind::Graphql;
        p.graphql = Some(q.to_string());
        // With repeated keys the split below could hide one of them: keep the whole body.
        if !p.duplicate_keys {
            let rest: Vec<&str> = top_level_members(s)
                .into_iter()
                .filter(|(k, _)| k != "query")
                .map(|(_, m)| m)
                .collect();
            p.view.text = q.to_string();
            if !rest.is_empty() {
                p.view.text.push_str("\n\n");
                p.view.text.push_str(&pretty(&format!("{{{}}}", rest.join(","))));
            }
        }
    } else if let Some((stmt, params)) = sql_field(&v) {
        p.view.kind = BodyKind::Sql;
        p.statement = Some(stmt);
        p.sql_params = params;
    }
    p.json = Some(v);
    true
}

/// `{"query": "mutation …", "variables": …}` — the GraphQL-over-HTTP shape.
fn graphql_document(v: &Value) -> Option<&str> {
    let q = v.get("query")?.as_str()?;
    let t = q.trim_start();
    let starts = |w: &str| {
        t.get(..w.len()).is_some_and(|h| h.eq_ignore_ascii_case(w))
            && t[w.len()..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_')
    };
    (t.starts_with('{') || ["query", "mutation", "subscription"].into_iter().any(starts)).then_some(q)
}

/// "query", "mutation" or "subscription" (a bare `{ … }` is a query).
pub(super) fn graphql_operation(doc: &str) -> &'static str {
    let t = doc.trim_start().to_ascii_lowercase();
    if t.starts_with("mutation") {
        "mutation"
    } else if t.starts_with("subscription") {
        "subscription"
    } else {
        "query"
    }
}

/// A JSON body carrying SQL in "query", "sql" or "statement" (Neon, D1, Snowflake, BigQuery…).
fn sql_field(v: &Value) -> Option<(String, Option<String>)> {
    let stmt = ["query", "sql", "statement"]
        .into_iter()
        .filter_map(|k| v.get(k)?.as_str())
        .find(|s| looks_like_sql(s))?;
    let params = ["params", "parameters", "args", "bindings"]
        .into_iter()
        .find_map(|k| v.get(k))
        .map(|p| p.to_string());
    Some((stmt.to_string(), params))
}

const SQL_WORDS: &[&str] = &[
    "select", "insert", "update", "delete", "create", "drop", "alter", "truncate", "with", "grant", "revoke", "merge",
    "upsert", "replace", "explain", "begin", "commit", "rollback", "call", "exec", "execute", "copy", "pragma",
    "vacuum", "analyze",
];

/// True when text starts (after comments) with an SQL keyword.
pub(super) fn looks_like_sql(s: &str) -> bool {
    let mut t = s;
    loop {
        t = t.trim_start();
        if let Some(r) = t.strip_prefix("--") {
            t = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = t.strip_prefix("/*") {
            t = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let word: String = t.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let next = t[word.len()..].chars().next();
    SQL_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
        && next.is_none_or(|c| c.is_whitespace() || c == '(' || c == ';')
}

/// `key = value` lines, decoded and folded so a decoded newline cannot fake another field.
fn form_lines(s: &str) -> String {
    let lines: Vec<String> = s
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            format!(
                "{} = {}",
                one_line(&super::form_decode(k)),
                one_line(&super::form_decode(v))
            )
        })
        .collect();
    lines.join("\n")
}

/// Classic `offset  hex  |ascii|` dump of the first [`HEX_PREVIEW`] bytes, then the size.
fn hex_preview(b: &[u8]) -> String {
    let mut out = String::new();
    for (i, row) in b[..b.len().min(HEX_PREVIEW)].chunks(16).enumerate() {
        out.push_str(&format!("{:08x} ", i * 16));
        for j in 0..16 {
            if j == 8 {
                out.push(' ');
            }
            match row.get(j) {
                Some(x) => out.push_str(&format!(" {x:02x}")),
                None => out.push_str("   "),
            }
        }
        // Printable ASCII only: nothing deceptive can reach the screen through this column.
        let ascii: String = row
            .iter()
            .map(|&c| {
                if c.is_ascii_graphic() || c == b' ' {
                    c as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("  |{ascii}|\n"));
    }
    if b.len() > HEX_PREVIEW {
        out.push_str(&format!(
            "… {} more bytes not shown as hex ({} bytes in all)\n",
            b.len() - HEX_PREVIEW,
            b.len()
        ));
    } else {
        out.push_str(&format!("({} bytes, binary)\n", b.len()));
    }
    out
}

/// Walks JSON text (already validated) outside strings, calling `f(byte_index, byte, depth)`
/// with the depth *before* the byte is applied.
fn walk(s: &str, mut f: impl FnMut(usize, u8, usize)) {
    let (mut in_str, mut esc, mut depth) = (false, false, 0usize);
    for (i, &c) in s.as_bytes().iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        f(i, c, depth);
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
}

/// Object members as written (a `:` outside strings is exactly one member).
fn members_on_wire(s: &str) -> usize {
    let mut n = 0;
    walk(s, |_, c, _| n += usize::from(c == b':'));
    n
}

fn members_in_value(v: &Value, depth: usize) -> usize {
    match v {
        Value::Object(m) if depth < 256 => m.len() + m.values().map(|x| members_in_value(x, depth + 1)).sum::<usize>(),
        Value::Array(a) if depth < 256 => a.iter().map(|x| members_in_value(x, depth + 1)).sum(),
        _ => 0,
    }
}

/// The top-level object's members as (decoded key, raw `"key": value` text).
fn top_level_members(s: &str) -> Vec<(String, &str)> {
    let mut cuts = Vec::new();
    walk(s, |i, c, depth| {
        if (depth == 0 && c == b'{') || (depth == 1 && (c == b',' || c == b'}')) {
            cuts.push(i);
        }
    });
    cuts.windows(2)
        .filter_map(|w| {
            let member = s.get(w[0] + 1..w[1])?;
            let (key, _) = member.split_once(':')?;
            let key = serde_json::from_str::<String>(key.trim()).ok()?;
            Some((key, member))
        })
        .collect()
}

/// Re-indents valid JSON like `serde_json::to_string_pretty`, keeping every token verbatim.
pub(super) fn pretty(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    let (mut in_str, mut esc, mut depth) = (false, false, 0usize);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_matches_serde_json_on_plain_input() {
        let s = r#" {"a": [1, 2, {"b": null, "c": {}}], "d": [], "e": "x,{y}:\"z\""} "#;
        let v: Value = serde_json::from_str(s).unwrap();
        assert_eq!(pretty(s), serde_json::to_string_pretty(&v).unwrap());
    }

    #[test]
    fn pretty_keeps_what_a_value_round_trip_would_lose() {
        let s = r#"{"to":"a@x","to":"b@y","n":100000000000000000000001,"s":"\u202e"}"#;
        let p = pretty(s);
        assert!(p.contains("\"a@x\"") && p.contains("\"b@y\""));
        assert!(p.contains("100000000000000000000001") && p.contains("\\u202e"));
        assert_eq!(members_on_wire(s), 4);
        assert_eq!(members_in_value(&serde_json::from_str(s).unwrap(), 0), 3);
    }

    #[test]
    fn sql_sniffing() {
        assert!(looks_like_sql("  -- hi\n/* x */ DELETE FROM users"));
        assert!(looks_like_sql("select(1)"));
        assert!(!looks_like_sql("selection of things"));
        assert!(!looks_like_sql("-- only a comment"));
    }
}
