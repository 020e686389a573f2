//! The press of an ntfy `http` action, as the approver's ntfy app POSTs it to
//! `/callbacks/ntfy`: a JSON body `{"topic": …, "token": …}` that the card itself carries.
//!
//! There is no platform signature to check: anyone who can read a topic can press its
//! buttons (and copy their bodies). What makes a press count is the token, which the hub
//! verifies as minted for the person whose topic the press names ([`crate::Channel::binds_tokens`]);
//! replays are refused there too (one vote per person, closed approvals take none). This
//! function only checks the shape, so nothing malformed reaches the hub.

use serde::Deserialize;
use serde_json::json;

use crate::{CallbackError, Click};

/// Larger bodies are not ours: the card's are under 200 bytes.
pub const MAX_BODY: usize = 1024;
/// ntfy's topic names: 1-64 of `A-Z a-z 0-9 _ -`.
pub const MAX_TOPIC: usize = 64;

/// True for a name ntfy accepts as a topic.
pub fn is_topic(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TOPIC && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Press {
    topic: String,
    token: String,
}

/// The body an action carries for `topic` (what [`press`] reads back).
pub fn press_body(topic: &str, token: &str) -> String {
    json!({ "topic": topic, "token": token }).to_string()
}

/// Reads an action press into a [`Click`] whose `user` is the topic it names.
pub fn press(headers: &http::HeaderMap, body: &[u8]) -> Result<Option<Click>, CallbackError> {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(CallbackError::MissingHeader("content-type: application/json"));
    }
    if body.len() > MAX_BODY {
        return Err(CallbackError::Malformed(format!("body over {MAX_BODY} bytes")));
    }
    let p: Press = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    if !is_topic(&p.topic) {
        return Err(CallbackError::Malformed("topic is not an ntfy topic name".into()));
    }
    if p.token.is_empty() || p.token.len() > crate::token::MAX_LEN {
        return Err(CallbackError::Malformed("token must be 1-64 bytes".into()));
    }
    Ok(Some(Click {
        done: Default::default(),
        channel: super::NAME,
        ack: json!({ "topic": p.topic }),
        user: p.topic,
        token: p.token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn a_press_names_its_topic_and_token() {
        let body = press_body("airlock-alice", "abc.a.10.tag");
        let c = press(&headers("application/json; charset=utf-8"), body.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.channel, c.user.as_str(), c.token.as_str()),
            ("ntfy", "airlock-alice", "abc.a.10.tag")
        );
        assert_eq!(c.ack, json!({"topic": "airlock-alice"}));
    }

    #[test]
    fn anything_else_is_refused_before_the_hub() {
        let ok = press_body("t", "x");
        assert!(matches!(
            press(&headers("text/plain"), ok.as_bytes()),
            Err(CallbackError::MissingHeader(_))
        ));
        assert!(matches!(
            press(&http::HeaderMap::new(), ok.as_bytes()),
            Err(CallbackError::MissingHeader(_))
        ));
        for bad in [
            r#"{"topic":"a/b","token":"x"}"#.to_string(),
            r#"{"topic":"","token":"x"}"#.into(),
            r#"{"topic":"a","token":""}"#.into(),
            format!(r#"{{"topic":"a","token":"{}"}}"#, "x".repeat(65)),
            format!(r#"{{"topic":"{}","token":"x"}}"#, "t".repeat(65)),
            r#"{"topic":"a","token":"x","user":"bob"}"#.into(),
            r#"{"topic":"a"}"#.into(),
            "not json".into(),
            format!(r#"{{"topic":"a","token":"x","pad":"{}"}}"#, " ".repeat(MAX_BODY)),
        ] {
            assert!(
                matches!(
                    press(&headers("application/json"), bad.as_bytes()),
                    Err(CallbackError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert!(is_topic("Airlock_alice-01") && !is_topic("a b") && !is_topic("ä"));
    }
}
