//! Where a body's GraphQL or SQL text lives: content types, form fields and JSON fields.

use percent_encoding::percent_decode;
use serde_json::Value;

use crate::json::Parsed;

/// Fields that hold SQL text in HTTP SQL APIs (Neon, Cloudflare D1, Snowflake, Databricks, …).
const SQL_KEYS: [&str; 4] = ["query", "sql", "statement", "q"];

/// Fields that hold batches of statements: `statements[*]`, Neon `queries[*]`, libSQL/Hrana
/// `requests[*].stmt.sql` and `batch.steps[*].stmt.sql`.
const BATCH_KEYS: [&str; 6] = ["statements", "queries", "batch", "requests", "steps", "stmt"];

/// How deep into a JSON body SQL fields are looked for (Hrana's are five levels down).
const MAX_SQL_DEPTH: usize = 6;

/// The lower-case `type/subtype` of a Content-Type header, parameters dropped.
pub(crate) struct MediaType(Option<String>);

impl MediaType {
    pub(crate) fn of(header: Option<&str>) -> Self {
        let essence = header
            .and_then(|h| h.split(';').next())
            .map(|e| e.trim().to_ascii_lowercase());
        MediaType(essence.filter(|e| !e.is_empty()))
    }

    pub(crate) fn is(&self, essence: &str) -> bool {
        self.0.as_deref() == Some(essence)
    }

    pub(crate) fn is_json(&self) -> bool {
        self.is("application/json") || self.is("text/json") || self.0.as_deref().is_some_and(|e| e.ends_with("+json"))
    }

    pub(crate) fn is_form(&self) -> bool {
        self.is("application/x-www-form-urlencoded")
    }

    pub(crate) fn is_multipart(&self) -> bool {
        self.0.as_deref().is_some_and(|e| e.starts_with("multipart/"))
    }

    pub(crate) fn is_text_or_absent(&self) -> bool {
        self.0.is_none() || self.is("text/plain")
    }

    fn is_sql(&self) -> bool {
        self.is("application/sql") || self.is("text/sql") || self.is("text/x-sql")
    }
}

/// The body starts, after whitespace, like a JSON object or array.
pub(crate) fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// Every value of a field named in `keys`, in order, repeats included (`q=a&q=b` yields both:
/// a server may take either). None for a value that is not UTF-8 once decoded.
pub(crate) fn form_values(body: &[u8], keys: &[&str]) -> Vec<Option<String>> {
    let decode = |s: &[u8]| -> Option<String> {
        let spaced: Vec<u8> = s.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        percent_decode(&spaced).decode_utf8().ok().map(|c| c.into_owned())
    };
    body.split(|&b| b == b'&')
        .filter_map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let key = decode(k)?;
            keys.contains(&key.as_str()).then(|| decode(v))
        })
        .collect()
}

/// The SQL texts a body carries, and whether part of it could not be read (fail closed).
pub(crate) fn sql_texts(media: &MediaType, body: &[u8], parsed: Option<&Parsed>) -> (Vec<String>, bool) {
    let mut texts = Vec::new();
    if let Some(p) = parsed {
        collect_json_sql(&p.value, 0, &mut texts);
        // A repeated key may hide SQL that a first-wins server would run.
        return (texts, p.duplicate_keys);
    }
    if media.is_json() {
        return (texts, true);
    }
    if media.is_form() {
        let mut unparsed = false;
        for v in form_values(body, &SQL_KEYS) {
            match v {
                Some(sql) => texts.push(sql),
                None => unparsed = true,
            }
        }
        return (texts, unparsed);
    }
    if media.is_sql() || media.is_text_or_absent() {
        return match std::str::from_utf8(body) {
            Ok(sql) if sql.trim().is_empty() => (texts, false),
            Ok(sql) => (vec![sql.to_owned()], false),
            Err(_) => (texts, true),
        };
    }
    (texts, false)
}

fn collect_json_sql(v: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_SQL_DEPTH {
        return;
    }
    match v {
        Value::Object(obj) => {
            for (k, val) in obj {
                if !SQL_KEYS.contains(&k.as_str()) && !BATCH_KEYS.contains(&k.as_str()) {
                    continue;
                }
                match val {
                    Value::String(s) => out.push(s.clone()),
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::String(s) => out.push(s.clone()),
                                other => collect_json_sql(other, depth + 1, out),
                            }
                        }
                    }
                    Value::Object(_) => collect_json_sql(val, depth + 1, out),
                    _ => {}
                }
            }
        }
        // A top-level array is a batch of request objects.
        Value::Array(items) if depth == 0 => {
            for item in items {
                collect_json_sql(item, depth + 1, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(ct: Option<&str>, body: &str) -> (Vec<String>, bool) {
        let parsed = crate::json::parse(body.as_bytes());
        sql_texts(&MediaType::of(ct), body.as_bytes(), parsed.as_ref())
    }

    #[test]
    fn media_types() {
        assert!(MediaType::of(Some("Application/JSON; charset=utf-8")).is_json());
        assert!(MediaType::of(Some("application/vnd.api+json")).is_json());
        assert!(MediaType::of(Some(" ")).is_text_or_absent());
        assert!(MediaType::of(None).is_text_or_absent());
        assert!(MediaType::of(Some("multipart/form-data; boundary=x")).is_multipart());
        assert!(!MediaType::of(Some("application/jsonx")).is_json());
    }

    #[test]
    fn json_fields_and_batches() {
        let (t, u) = texts(Some("application/json"), r#"{"query":"SELECT 1","params":[]}"#);
        assert_eq!((t, u), (vec!["SELECT 1".to_owned()], false));
        // Object key order depends on serde_json's features: compare sorted.
        let (mut t, _) = texts(None, r#"{"statements":[{"statement":"A"},"B"],"sql":"C"}"#);
        t.sort();
        assert_eq!(t, ["A", "B", "C"]);
        let (t, _) = texts(None, r#"[{"sql":"A"},{"q":"B"}]"#);
        assert_eq!(t, ["A", "B"]);
        let hrana = r#"{"requests":[{"type":"execute","stmt":{"sql":"A"}},
            {"type":"batch","batch":{"steps":[{"stmt":{"sql":"B"}}]}}]}"#;
        assert_eq!(texts(None, hrana).0, ["A", "B"]);
        assert_eq!(
            texts(None, r#"{"other":"DROP TABLE t","n":{"sql":"x"}}"#).0,
            Vec::<String>::new()
        );
    }

    #[test]
    fn duplicates_and_broken_json_fail_closed() {
        assert!(texts(None, r#"{"query":"DROP TABLE t","query":1}"#).1);
        assert_eq!(texts(Some("application/json"), "{nope"), (vec![], true));
    }

    #[test]
    fn forms_keep_every_value() {
        let (t, u) = texts(
            Some("application/x-www-form-urlencoded"),
            "q=SELECT+1&x=1&q%75ery=DROP%20TABLE%20t&sql",
        );
        assert_eq!(t, ["SELECT 1", "DROP TABLE t", ""]);
        assert!(!u);
        assert!(texts(Some("application/x-www-form-urlencoded"), "sql=%FF").1);
    }

    #[test]
    fn raw_text() {
        assert_eq!(texts(Some("application/sql"), "DROP TABLE t").0, ["DROP TABLE t"]);
        assert_eq!(texts(Some("text/plain"), "  ").0, Vec::<String>::new());
        assert_eq!(texts(Some("image/png"), "DROP TABLE t").0, Vec::<String>::new());
    }
}
