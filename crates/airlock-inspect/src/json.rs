//! JSON parsing that also notices duplicate object keys.
//!
//! `{"query": "query { a }", "query": "mutation { drop }"}` is read last-wins by serde_json (and
//! most servers), first-wins by some. The value is kept last-wins, and the duplicate is reported
//! so that readers extracting GraphQL or SQL from it can fail closed.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed JSON body.
pub(crate) struct Parsed {
    pub value: Value,
    /// Some object, at any depth, repeats a key.
    pub duplicate_keys: bool,
}

/// Parses `body` as one JSON document. None when it is not JSON, or nests deeper than
/// serde_json's recursion limit (128), which it reports as an error instead of overflowing.
pub(crate) fn parse(body: &[u8]) -> Option<Parsed> {
    let dup = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = ValueSeed(&dup).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(Parsed {
        value,
        duplicate_keys: dup.get(),
    })
}

/// Builds a [`Value`] exactly as serde_json does, flagging repeated keys on the way.
#[derive(Clone, Copy)]
struct ValueSeed<'d>(&'d Cell<bool>);

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
            if out.insert(key, v).is_some() {
                self.0.set(true);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json() {
        for text in [
            r#"{"a":[1,-2,3.5,true,null,"x"],"b":{"c":{}}}"#,
            "[]",
            "1",
            r#""s""#,
            "1e400",
        ] {
            let ours = parse(text.as_bytes()).map(|p| p.value);
            let theirs = serde_json::from_str::<Value>(text).ok();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn duplicate_keys_are_flagged_last_wins() {
        let p = parse(br#"{"a":{"q":1,"q":2}}"#).expect("json");
        assert!(p.duplicate_keys);
        assert_eq!(p.value, serde_json::json!({"a": {"q": 2}}));
        assert!(!parse(br#"{"q":1,"a":{"q":2}}"#).expect("json").duplicate_keys);
    }

    #[test]
    fn rejects_trailing_garbage_and_deep_nesting() {
        assert!(parse(b"{} {}").is_none());
        assert!(parse(b"{\"a\":1").is_none());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep.as_bytes()).is_none());
        let deep_obj = "{\"a\":".repeat(100_000);
        assert!(parse(deep_obj.as_bytes()).is_none());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(ok.as_bytes()).is_some());
    }
}
