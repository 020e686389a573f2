//! JSON parsing for the policy: every reading a common parser could make of a body
//! (invariant 12).
//!
//! - `{"a":1,"a":2}` is read last-wins by serde_json and most servers, first-wins by others: both
//!   readings are kept when a key repeats.
//! - `{"a":1} {"a":2}` or `{"a":1}garbage` is read as its first value by a stream decoder (Go's
//!   `json.Decoder`): each value of the stream is a reading, and trailing text that is not JSON
//!   marks the body as partly unread.
//! - `//` and `/* */` comments and trailing commas are accepted by lenient parsers (JSON5,
//!   Jackson's options): the text without them is read too.
//! - Keys that differ only in case are matched by the policy (Go reads them case-insensitively).

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Most values read from one stream of JSON values.
const MAX_STREAM_VALUES: usize = 16;

/// The readings of a body that is, or claims to be, JSON.
#[derive(Debug, Default)]
pub(crate) struct Readings {
    pub values: Vec<Value>,
    /// Some of the text could not be read as JSON by any reading.
    pub unread: bool,
}

/// Every reading of `body`. `values` is empty (and `unread` set) when nothing parses.
pub(crate) fn readings(body: &[u8]) -> Readings {
    // The common case, one well-formed document, in one pass.
    if let Some((last, first)) = parse_one(body) {
        return Readings {
            values: std::iter::once(last).chain(first).collect(),
            unread: false,
        };
    }
    let mut r = stream(body);
    if r.values.is_empty() || r.unread {
        // A lenient parser reads the text without comments and trailing commas.
        if let Some(stripped) = strip_comments(body) {
            let lenient = stream(&stripped);
            if !lenient.values.is_empty() {
                for v in lenient.values {
                    push_unique(&mut r.values, v);
                }
                r.unread = lenient.unread;
            }
        }
    }
    if r.values.is_empty() {
        r.unread = true;
    }
    r
}

/// One document, or a stream of them: each value read last-wins and, when a key repeats,
/// first-wins as well.
fn stream(body: &[u8]) -> Readings {
    let mut out = Readings::default();
    let mut it = serde_json::Deserializer::from_slice(body).into_iter::<IgnoredAny>();
    let mut start = 0;
    loop {
        match it.next() {
            None => break,
            Some(Ok(_)) => {
                let end = it.byte_offset();
                let span = &body[start..end];
                start = end;
                if out.values.len() >= MAX_STREAM_VALUES {
                    out.unread = true;
                    break;
                }
                match parse_one(span) {
                    Some((last, first)) => {
                        push_unique(&mut out.values, last);
                        if let Some(first) = first {
                            push_unique(&mut out.values, first);
                        }
                    }
                    None => {
                        out.unread = true;
                        break;
                    }
                }
            }
            Some(Err(_)) => {
                out.unread = true;
                break;
            }
        }
    }
    out
}

fn push_unique(values: &mut Vec<Value>, v: Value) {
    if !values.contains(&v) {
        values.push(v);
    }
}

/// One JSON value: (last-wins, first-wins when some key repeats). None when it does not parse or
/// nests deeper than serde_json's recursion limit (128), which it reports instead of overflowing.
fn parse_one(text: &[u8]) -> Option<(Value, Option<Value>)> {
    let dup = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(text);
    let last = ValueSeed {
        dup: &dup,
        first_wins: false,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    if !dup.get() {
        return Some((last, None));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let first = ValueSeed {
        dup: &dup,
        first_wins: true,
    }
    .deserialize(&mut de)
    .ok()?;
    Some((last, Some(first)))
}

/// The text without `//` and `/* */` comments and trailing commas, outside strings; None when
/// there were none (or a comment never ends).
fn strip_comments(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut i = 0;
    while i < body.len() {
        match (body[i], body.get(i + 1)) {
            (b'"', _) => {
                let end = string_end(body, i);
                out.extend_from_slice(&body[i..end]);
                i = end;
            }
            (b'/', Some(b'/')) => {
                changed = true;
                while i < body.len() && body[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                changed = true;
                let end = body[i + 2..].windows(2).position(|w| w == b"*/")?;
                i += 2 + end + 2;
                out.push(b' ');
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Trailing commas: a comma whose next significant byte closes the container.
    let mut clean = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            b'"' => {
                let end = string_end(&out, i);
                clean.extend_from_slice(&out[i..end]);
                i = end;
                continue;
            }
            b',' if matches!(
                out[i + 1..].iter().find(|c| !c.is_ascii_whitespace()),
                Some(b'}' | b']')
            ) =>
            {
                changed = true;
            }
            b => clean.push(b),
        }
        i += 1;
    }
    changed.then_some(clean)
}

/// The index just past the string that starts at `start` (a `"`), or the end of the text.
fn string_end(text: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// Builds a [`Value`] as serde_json does, flagging repeated keys on the way; with `first_wins`
/// a repeated key keeps its first value.
#[derive(Clone, Copy)]
struct ValueSeed<'d> {
    dup: &'d Cell<bool>,
    first_wins: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            if out.contains_key(&key) {
                self.dup.set(true);
                if self.first_wins {
                    continue;
                }
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_serde_json() {
        for text in [
            r#"{"a":[1,-2,3.5,true,null,"x"],"b":{"c":{}}}"#,
            "[]",
            "1",
            r#""s""#,
            "1e400",
        ] {
            let ours = readings(text.as_bytes());
            let theirs = serde_json::from_str::<Value>(text).ok();
            assert_eq!(ours.values.first().cloned(), theirs, "{text}");
            assert_eq!(ours.unread, theirs.is_none(), "{text}");
        }
    }

    #[test]
    fn repeated_keys_are_read_both_ways() {
        let r = readings(br#"{"a":{"q":1,"q":2}}"#);
        assert_eq!(r.values, [json!({"a": {"q": 2}}), json!({"a": {"q": 1}})]);
        assert_eq!(readings(br#"{"q":1,"a":{"q":2}}"#).values.len(), 1);
    }

    #[test]
    fn streams_comments_and_trailing_text() {
        let r = readings(br#"{"action":"noop"} {"action":"deploy"}"#);
        assert_eq!(r.values, [json!({"action": "noop"}), json!({"action": "deploy"})]);
        assert!(!r.unread);
        let r = readings(br#"{"action":"deploy"}garbage"#);
        assert_eq!(r.values, [json!({"action": "deploy"})]);
        assert!(r.unread);
        let r = readings(b"{\"action\": // hi\n \"deploy\", /* x */ }");
        assert_eq!(r.values, [json!({"action": "deploy"})]);
        assert!(!r.unread);
        let r = readings(br#"{"url":"http://x//y"}"#);
        assert_eq!(r.values, [json!({"url": "http://x//y"})]);
    }

    #[test]
    fn rejects_garbage_and_deep_nesting() {
        assert!(readings(b"{\"a\":1").unread);
        assert!(readings(b"nope").values.is_empty());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(readings(deep.as_bytes()).values.is_empty());
        let deep_obj = "{\"a\":".repeat(100_000);
        assert!(readings(deep_obj.as_bytes()).values.is_empty());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(readings(ok.as_bytes()).values.len(), 1);
    }
}
