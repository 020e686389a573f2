//! Where a request's GraphQL, SQL and method-override text lives: content types, form fields,
//! multipart parts, JSON fields (at any depth, keys compared as Go compares them) and the URL's
//! query string — every place a server behind airlock may take it from (invariant 12).

use airlock_core::policy::fold_eq;
use percent_encoding::percent_decode;
use serde_json::Value;

use crate::Unreadable;

/// Fields that hold SQL text in HTTP SQL APIs (Neon, Cloudflare D1, Snowflake, Databricks,
/// ClickHouse's `query` parameter, Hasura's `args.sql`, libSQL/Hrana's `stmt.sql`, …).
const SQL_KEYS: [&str; 7] = ["query", "sql", "statement", "statements", "queries", "stmt", "q"];

/// The form, query and JSON field Rails, Laravel, Symfony, Spring and Express read as the method.
pub const METHOD_FIELD: &str = "_method";

/// How deep into a JSON body SQL fields are looked for (Hrana's are five levels down; Hasura's
/// bulk requests six).
const MAX_SQL_DEPTH: usize = 8;

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
}

/// The body starts, after whitespace, like a JSON object or array.
pub(crate) fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// Every value of a form field whose name is one of `keys` (compared without case), in order,
/// repeats included (`q=a&q=b` yields both: a server may take either). None for a value that is
/// not UTF-8 once decoded.
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
            keys.iter().any(|w| key.eq_ignore_ascii_case(w)).then(|| decode(v))
        })
        .collect()
}

/// Values of URL query parameters named one of `keys` (without case: ASP.NET and PHP on IIS
/// read keys so).
pub(crate) fn query_values<'a>(query: &'a [(String, String)], keys: &'a [&str]) -> impl Iterator<Item = &'a str> {
    query
        .iter()
        .filter(|(k, _)| keys.iter().any(|w| k.eq_ignore_ascii_case(w)))
        .map(|(_, v)| v.as_str())
}

/// Every member of `obj` whose key folds to `key`.
pub(crate) fn members<'a>(obj: &'a serde_json::Map<String, Value>, key: &'a str) -> impl Iterator<Item = &'a Value> {
    obj.iter().filter(move |(k, _)| fold_eq(k, key)).map(|(_, v)| v)
}

/// The SQL texts a request carries, and whether part of it could not be read (fail closed).
pub(crate) fn sql_texts(
    media: &MediaType,
    content_type: Option<&str>,
    body: &[u8],
    json: Option<&crate::json::Readings>,
    query: &[(String, String)],
) -> (Vec<String>, bool) {
    let mut texts: Vec<String> = query_values(query, &SQL_KEYS).map(str::to_owned).collect();
    let mut unread = false;
    if let Some(j) = json {
        for v in &j.values {
            collect_json_sql(v, 0, false, &mut texts);
        }
        unread |= j.unread;
    } else if media.is_form() {
        let values = form_values(body, &SQL_KEYS);
        if values.is_empty() {
            // No SQL field: a server that reads the body as SQL whatever its type (ClickHouse,
            // or curl's default form type on `-d 'DROP TABLE t'`) reads all of it.
            unread |= raw_text(body, &mut texts);
        }
        for v in values {
            match v {
                Some(sql) => texts.push(sql),
                None => unread = true,
            }
        }
    } else if media.is_multipart() {
        match crate::multipart::parts(content_type, body) {
            Some(parts) => {
                for p in parts.iter().filter(|p| p.name.as_deref().is_some_and(is_sql_key)) {
                    unread |= raw_text(p.body, &mut texts);
                }
            }
            None => unread = true,
        }
    } else if !body.is_empty() {
        // SQL media types, plain text, no type, or a type we do not know: the body is the statement.
        unread |= raw_text(body, &mut texts);
    }
    (texts, unread)
}

fn is_sql_key(k: &str) -> bool {
    SQL_KEYS.iter().any(|s| fold_eq(k, s))
}

/// Adds `body` as one SQL text; true when it is not text.
fn raw_text(body: &[u8], texts: &mut Vec<String>) -> bool {
    match std::str::from_utf8(body) {
        Ok(sql) if sql.trim().is_empty() => false,
        Ok(sql) => {
            texts.push(sql.to_owned());
            false
        }
        Err(_) => true,
    }
}

/// Strings under SQL keys at any depth (arrays and objects under them included).
fn collect_json_sql(v: &Value, depth: usize, under_key: bool, out: &mut Vec<String>) {
    if depth > MAX_SQL_DEPTH {
        return;
    }
    match v {
        Value::String(s) if under_key => out.push(s.clone()),
        Value::Object(obj) => {
            for (k, val) in obj {
                collect_json_sql(val, depth + 1, is_sql_key(k), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_json_sql(item, depth + 1, under_key, out);
            }
        }
        _ => {}
    }
}

/// The `_method` values a body carries (form field, multipart part, top-level JSON member);
/// `Err` when the body claims such a form but cannot be read.
pub(crate) fn body_methods(content_type: Option<&str>, body: &[u8]) -> Result<Vec<String>, Unreadable> {
    const FIELD: &[&str] = &[METHOD_FIELD];
    let media = MediaType::of(content_type);
    if media.is_form() {
        return form_values(body, FIELD)
            .into_iter()
            .map(|v| v.ok_or(Unreadable))
            .collect();
    }
    if media.is_multipart() {
        let parts = crate::multipart::parts(content_type, body).ok_or(Unreadable)?;
        return parts
            .iter()
            .filter(|p| p.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(FIELD[0])))
            .map(|p| String::from_utf8(p.body.to_vec()).map_err(|_| Unreadable))
            .collect();
    }
    if media.is_json() {
        let r = crate::json::readings(body);
        if r.unread {
            return Err(Unreadable);
        }
        let mut out = Vec::new();
        for v in &r.values {
            if let Value::Object(obj) = v {
                for m in members(obj, FIELD[0]) {
                    out.push(m.as_str().ok_or(Unreadable)?.to_owned());
                }
            }
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(ct: Option<&str>, body: &str, query: &[(&str, &str)]) -> (Vec<String>, bool) {
        let media = MediaType::of(ct);
        let json =
            (media.is_json() || looks_like_json(body.as_bytes())).then(|| crate::json::readings(body.as_bytes()));
        let q: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let (mut t, u) = sql_texts(&media, ct, body.as_bytes(), json.as_ref(), &q);
        t.sort();
        (t, u)
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
    fn json_fields_at_any_depth_and_in_any_case() {
        let (t, u) = texts(Some("application/json"), r#"{"query":"SELECT 1","params":[]}"#, &[]);
        assert_eq!((t, u), (vec!["SELECT 1".to_owned()], false));
        let (t, _) = texts(None, r#"{"statements":[{"statement":"A"},"B"],"sql":"C"}"#, &[]);
        assert_eq!(t, ["A", "B", "C"]);
        assert_eq!(texts(None, r#"[{"sql":"A"},{"q":"B"}]"#, &[]).0, ["A", "B"]);
        let hrana = r#"{"requests":[{"type":"execute","stmt":{"sql":"A"}},
            {"type":"batch","batch":{"steps":[{"stmt":{"sql":"B"}}]}}]}"#;
        assert_eq!(texts(None, hrana, &[]).0, ["A", "B"]);
        // Hasura's run_sql, and a key spelled in another case.
        let hasura = r#"{"type":"run_sql","args":{"SQL":"DROP TABLE t"}}"#;
        assert_eq!(texts(None, hasura, &[]).0, ["DROP TABLE t"]);
        assert_eq!(
            texts(None, r#"{"other":"DROP TABLE t","n":{"x":"y"}}"#, &[]).0,
            Vec::<String>::new()
        );
    }

    #[test]
    fn duplicates_are_both_read_and_broken_json_fails_closed() {
        let (t, u) = texts(None, r#"{"query":"DROP TABLE t","query":"SELECT 1"}"#, &[]);
        assert_eq!((t, u), (vec!["DROP TABLE t".to_owned(), "SELECT 1".to_owned()], false));
        assert_eq!(texts(Some("application/json"), "{nope", &[]), (vec![], true));
    }

    #[test]
    fn forms_multipart_raw_bodies_and_the_url() {
        let (t, u) = texts(
            Some("application/x-www-form-urlencoded"),
            "q=SELECT+1&x=1&q%75ery=DROP%20TABLE%20t&sql",
            &[],
        );
        assert_eq!(t, ["", "DROP TABLE t", "SELECT 1"]);
        assert!(!u);
        assert!(texts(Some("application/x-www-form-urlencoded"), "sql=%FF", &[]).1);
        // curl -d 'DROP TABLE t' sends the form type; ClickHouse runs the body.
        assert_eq!(
            texts(Some("application/x-www-form-urlencoded"), "DROP TABLE t", &[]).0,
            ["DROP TABLE t"]
        );
        assert_eq!(
            texts(Some("application/x-sql"), "DROP TABLE t", &[]).0,
            ["DROP TABLE t"]
        );
        assert_eq!(texts(Some("text/plain"), "  ", &[]).0, Vec::<String>::new());
        assert_eq!(
            texts(Some("application/octet-stream"), "DROP TABLE t", &[]).0,
            ["DROP TABLE t"]
        );
        assert_eq!(texts(None, "", &[("query", "DROP TABLE t")]).0, ["DROP TABLE t"]);
        let mp = "--b\r\nContent-Disposition: form-data; name=\"sql\"\r\n\r\nDROP TABLE t\r\n--b--";
        assert_eq!(
            texts(Some("multipart/form-data; boundary=b"), mp, &[]).0,
            ["DROP TABLE t"]
        );
        assert!(texts(Some("multipart/form-data; boundary=b"), "junk", &[]).1);
    }

    #[test]
    fn method_fields_in_bodies() {
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(body_methods(form, b"a=1&_method=DELETE"), Ok(vec!["DELETE".to_owned()]));
        assert_eq!(body_methods(form, b"_METHOD=put"), Ok(vec!["put".to_owned()]));
        assert_eq!(body_methods(form, b"_method=%FF"), Err(Unreadable));
        let json = Some("application/json");
        assert_eq!(
            body_methods(json, br#"{"_method":"DELETE"}"#),
            Ok(vec!["DELETE".to_owned()])
        );
        assert_eq!(body_methods(json, br#"{"_method":"DELETE"#), Err(Unreadable));
        let mp = "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--";
        assert_eq!(
            body_methods(Some("multipart/form-data; boundary=b"), mp.as_bytes()),
            Ok(vec!["DELETE".to_owned()])
        );
        assert_eq!(body_methods(Some("text/plain"), b"_method=DELETE"), Ok(vec![]));
    }
}
