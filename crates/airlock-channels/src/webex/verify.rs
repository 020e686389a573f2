//! Inbound Webex webhooks: `X-Spark-Signature` (hex HMAC-SHA1 of the raw body with the
//! webhook's secret, compared in constant time), then the `attachmentActions` envelope → the
//! action id. The envelope alone is never trusted for who pressed what: the person and the
//! inputs come from `GET /v1/attachment/actions/{id}` ([`click_from_action`]).
//!
//! Pure functions: headers, body, time and keys in; a verdict out.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use crate::adaptive::TOKEN_FIELD;
use crate::token::{self, Claims};
use crate::{CallbackError, Click};

pub const SIGNATURE_HEADER: &str = "X-Spark-Signature";
/// An action created longer ago than this is refused as a replay (the webhook carries no
/// signed timestamp; the action's `created`, from the API, is the clock).
pub const MAX_AGE_SECS: u64 = 300;
/// Webex ids are base64 of a URI: bounded, and from a small alphabet.
const MAX_ID: usize = 200;

pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b))
}

/// Checks the signature over the raw body and returns the envelope.
pub fn verify_request(secret: &[u8], headers: &http::HeaderMap, body: &[u8]) -> Result<Value, CallbackError> {
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(CallbackError::MissingHeader(SIGNATURE_HEADER))?;
    let given = hex::decode(sig.trim()).map_err(|_| CallbackError::BadSignature)?;
    // A key of any length is valid for HMAC, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| CallbackError::BadSignature)?;
    serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(format!("body is not JSON: {e}")))
}

/// The action id of an `attachmentActions` / `created` envelope; `None` for other events.
pub fn action_id(envelope: &Value) -> Result<Option<String>, CallbackError> {
    if envelope["resource"] != "attachmentActions" || envelope["event"] != "created" {
        return Ok(None);
    }
    match envelope["data"]["id"].as_str() {
        Some(id) if is_id(id) => Ok(Some(id.to_string())),
        _ => Err(CallbackError::Malformed("no data.id".into())),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time ("2026-12-07T05:30:00.123Z").
fn parse_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, m, d, hh, mm, ss) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 || y < 1970 {
        return None;
    }
    // Days from civil (Howard Hinnant), the inverse of render::utc_parts.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// The API's answer for an attachment action → a [`Click`]: the person is `personId`, the
/// token `inputs.airlock`; anything that is not a fresh submit of one of our tokens is `None`.
pub fn click_from_action(action: &Value, expected_id: &str, now_secs: u64) -> Result<Option<Click>, CallbackError> {
    if action["id"] != expected_id {
        return Err(CallbackError::Malformed("the API answered for another action".into()));
    }
    if action["type"] != "submit" {
        return Ok(None);
    }
    let Some(token) = action["inputs"][TOKEN_FIELD].as_str() else {
        return Ok(None);
    };
    if token.len() > token::MAX_LEN || Claims::parse(token).is_err() {
        return Ok(None);
    }
    let created = action["created"]
        .as_str()
        .and_then(parse_utc)
        .ok_or_else(|| CallbackError::Malformed("no created time".into()))?;
    if now_secs.abs_diff(created) > MAX_AGE_SECS {
        return Err(CallbackError::Stale);
    }
    let person = action["personId"]
        .as_str()
        .filter(|p| is_id(p))
        .ok_or_else(|| CallbackError::Malformed("no personId".into()))?;
    let room = action["roomId"].as_str().filter(|r| is_id(r));
    let message = action["messageId"].as_str().filter(|m| is_id(m));
    Ok(Some(Click {
        done: Default::default(),
        channel: "webex",
        user: person.to_string(),
        token: token.to_string(),
        ack: json!({"room": room, "message": message}),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &[u8], body: &[u8]) -> http::HeaderMap {
        let mut m = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap();
        m.update(body);
        let mut h = http::HeaderMap::new();
        h.insert(
            SIGNATURE_HEADER,
            hex::encode(m.finalize().into_bytes()).parse().unwrap(),
        );
        h
    }

    /// RFC 2202 test case 2 (HMAC-SHA1, key "Jefe").
    #[test]
    fn rfc2202_vector_and_signatures() {
        let body = b"what do ya want for nothing?";
        let mut h = http::HeaderMap::new();
        h.insert(
            SIGNATURE_HEADER,
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79".parse().unwrap(),
        );
        assert!(
            matches!(verify_request(b"Jefe", &h, body), Err(CallbackError::Malformed(_))),
            "signed, not JSON"
        );
        assert_eq!(verify_request(b"Jeff", &h, body), Err(CallbackError::BadSignature));
        let env = br#"{"resource":"attachmentActions","event":"created","data":{"id":"Y2lzY29zcGFyazovL3VzL0FUVEFDSE1FTlRfQUNUSU9OLzE"}}"#;
        let v = verify_request(b"s3cret", &signed(b"s3cret", env), env).unwrap();
        assert_eq!(
            action_id(&v).unwrap().as_deref(),
            Some("Y2lzY29zcGFyazovL3VzL0FUVEFDSE1FTlRfQUNUSU9OLzE")
        );
        assert_eq!(
            verify_request(b"other", &signed(b"s3cret", env), env),
            Err(CallbackError::BadSignature)
        );
        assert_eq!(
            verify_request(b"s3cret", &http::HeaderMap::new(), env),
            Err(CallbackError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            action_id(&json!({"resource": "messages", "event": "created"})),
            Ok(None)
        );
    }

    #[test]
    fn actions_give_the_person_and_token() {
        assert_eq!(parse_utc("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_utc("2023-11-14T22:13:20.000Z"), Some(1_700_000_000));
        assert_eq!(parse_utc("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_utc("2023-11-14T22:13:20+01:00"), None);
        let token = "AbCdEfGhIjKl.a.6b49d200.AAAAAAAAAAAAAAAAAAAAAA";
        let action = json!({"id": "A1", "type": "submit", "messageId": "M1", "roomId": "R1",
            "personId": "P1", "created": "2023-11-14T22:13:20.000Z", "inputs": {"airlock": token}});
        let c = click_from_action(&action, "A1", 1_700_000_100).unwrap().unwrap();
        assert_eq!((c.channel, c.user.as_str(), c.token.as_str()), ("webex", "P1", token));
        assert_eq!(
            click_from_action(&action, "A1", 1_700_000_400),
            Err(CallbackError::Stale)
        );
        assert!(click_from_action(&action, "A2", 1_700_000_100).is_err());
        let mut other = action.clone();
        other["inputs"] = json!({"airlock": "approve"});
        assert_eq!(click_from_action(&other, "A1", 1_700_000_100), Ok(None));
    }
}
