//! Inbound interactions: Discord's request signature (Ed25519 over `timestamp + body` with
//! the application's public key, "Security and Authorization" in the interactions docs) and
//! the interaction → [`Click`] extraction shared by the HTTP endpoint and the Gateway reader.
//!
//! Everything here is pure: headers, body, the time and the key in; a verdict out.

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Value, json};

use crate::token::{self, Claims};
use crate::{CallbackError, Click};

pub const SIGNATURE_HEADER: &str = "X-Signature-Ed25519";
pub const TIMESTAMP_HEADER: &str = "X-Signature-Timestamp";
/// Discord signs a fresh timestamp on every request; one more than five minutes off is a
/// replay (the same window as Slack's).
pub const MAX_SKEW_SECS: u64 = 300;
/// Interaction types (Discord's `InteractionType`).
pub const PING: u64 = 1;
pub const MESSAGE_COMPONENT: u64 = 3;
/// Component type of a button.
const BUTTON: u64 = 2;
/// Snowflakes are at most 20 decimal digits (u64).
const MAX_SNOWFLAKE: usize = 20;
/// Interaction tokens are a few hundred characters; bound what we keep and put in a URL.
const MAX_INTERACTION_TOKEN: usize = 1000;

/// The application's public key, from the Developer Portal ("General Information").
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0.as_bytes()))
    }
}

impl PublicKey {
    /// The 64 hex digits the portal shows.
    pub fn from_hex(s: &str) -> Option<PublicKey> {
        let raw: [u8; 32] = hex::decode(s.trim()).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&raw).ok().map(PublicKey)
    }
}

/// Whether `signature` (hex) is a valid Ed25519 signature by `key` over the concatenation of
/// `parts` (RFC 8032, strict: no malleable or small-order encodings).
pub fn verify_ed25519(key: &PublicKey, parts: &[&[u8]], signature: &str) -> bool {
    let Some(raw) = hex::decode(signature.trim())
        .ok()
        .and_then(|v| <[u8; 64]>::try_from(v).ok())
    else {
        return false;
    };
    let sig = Signature::from_bytes(&raw);
    let message: Vec<u8> = parts.concat();
    key.0.verify_strict(&message, &sig).is_ok()
}

fn header<'a>(headers: &'a http::HeaderMap, name: &'static str) -> Result<&'a str, CallbackError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(CallbackError::MissingHeader(name))
}

/// Authenticates an interaction posted to the HTTP endpoint and returns it parsed. The
/// signature is checked before the timestamp is trusted and before the body is parsed.
pub fn verify_request(
    key: &PublicKey,
    headers: &http::HeaderMap,
    body: &[u8],
    now_secs: u64,
) -> Result<Value, CallbackError> {
    let sig = header(headers, SIGNATURE_HEADER)?;
    let ts = header(headers, TIMESTAMP_HEADER)?;
    if !verify_ed25519(key, &[ts.as_bytes(), body], sig) {
        return Err(CallbackError::BadSignature);
    }
    let ts: u64 = ts
        .trim()
        .parse()
        .map_err(|_| CallbackError::MissingHeader(TIMESTAMP_HEADER))?;
    if now_secs.abs_diff(ts) > MAX_SKEW_SECS {
        return Err(CallbackError::Stale);
    }
    serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(format!("body is not JSON: {e}")))
}

fn snowflake(v: &Value) -> Option<&str> {
    v.as_str()
        .filter(|s| !s.is_empty() && s.len() <= MAX_SNOWFLAKE && s.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn is_snowflake(s: &str) -> bool {
    snowflake(&Value::String(s.to_string())).is_some()
}

fn malformed(what: &str) -> CallbackError {
    CallbackError::Malformed(what.to_string())
}

/// A button press on one of our cards → a [`Click`]; anything else (PING, commands, other
/// components, buttons whose `custom_id` is not a signed token) → `None`. The interaction
/// must already be authenticated (signature, or the Gateway connection). `mode` says how the
/// interaction was answered ("http" or "gateway"); the clicker is `member.user.id` in a
/// guild and `user.id` in a DM.
pub fn click_from_interaction(v: &Value, mode: &'static str) -> Result<Option<Click>, CallbackError> {
    let kind = v["type"].as_u64().ok_or_else(|| malformed("interaction has no type"))?;
    if kind != MESSAGE_COMPONENT {
        return Ok(None);
    }
    if v["data"]["component_type"].as_u64() != Some(BUTTON) {
        return Ok(None);
    }
    let Some(custom_id) = v["data"]["custom_id"].as_str() else {
        return Err(malformed("no data.custom_id"));
    };
    // Our buttons carry a signed token and nothing else; the hub checks its signature.
    if custom_id.len() > token::MAX_LEN || Claims::parse(custom_id).is_err() {
        return Ok(None);
    }
    let user = snowflake(&v["member"]["user"]["id"])
        .or_else(|| snowflake(&v["user"]["id"]))
        .ok_or_else(|| malformed("no member.user.id or user.id"))?;
    let id = snowflake(&v["id"]).ok_or_else(|| malformed("no interaction id"))?;
    let app = snowflake(&v["application_id"]).ok_or_else(|| malformed("no application_id"))?;
    let itoken = v["token"]
        .as_str()
        .filter(|t| {
            !t.is_empty()
                && t.len() <= MAX_INTERACTION_TOKEN
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .ok_or_else(|| malformed("no usable interaction token"))?;
    Ok(Some(Click {
        done: Default::default(),
        channel: "discord",
        user: user.to_string(),
        token: custom_id.to_string(),
        ack: json!({"mode": mode, "interaction_id": id, "application_id": app, "interaction_token": itoken}),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(hex_key: &str) -> PublicKey {
        PublicKey::from_hex(hex_key).unwrap()
    }

    /// RFC 8032 section 7.1, TEST 1, 2 and 3 (Ed25519).
    #[test]
    fn rfc8032_test_vectors() {
        let t1 = key("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let s1 = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        assert!(verify_ed25519(&t1, &[b""], s1));
        let t2 = key("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
        let s2 = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";
        assert!(verify_ed25519(&t2, &[b"\x72"], s2));
        let t3 = key("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025");
        let s3 = "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a";
        // The message split as timestamp + body is the same message.
        assert!(verify_ed25519(&t3, &[b"\xaf", b"\x82"], s3));
        // One flipped bit anywhere, or another key: refused.
        assert!(!verify_ed25519(&t2, &[b"\x73"], s2));
        assert!(!verify_ed25519(&t1, &[b"\x72"], s2));
        let flipped = format!("{}{}", &s2[..127], if s2.ends_with('0') { '1' } else { '0' });
        assert!(!verify_ed25519(&t2, &[b"\x72"], &flipped));
        for bad in ["", "zz", &s2[..126]] {
            assert!(!verify_ed25519(&t2, &[b"\x72"], bad), "{bad:?}");
        }
        assert!(PublicKey::from_hex("d75a98").is_none());
        assert!(PublicKey::from_hex("not hex at all").is_none());
    }

    fn signed(sk: &ed25519_dalek::SigningKey, ts: &str, body: &str) -> http::HeaderMap {
        use ed25519_dalek::Signer;
        let sig = sk.sign(format!("{ts}{body}").as_bytes());
        let mut h = http::HeaderMap::new();
        h.insert(SIGNATURE_HEADER, hex::encode(sig.to_bytes()).parse().unwrap());
        h.insert(TIMESTAMP_HEADER, ts.parse().unwrap());
        h
    }

    #[test]
    fn requests_are_signed_fresh_and_whole() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pk = PublicKey(sk.verifying_key());
        let now = 1_800_000_000u64;
        let body = r#"{"type":1}"#;
        let h = signed(&sk, &now.to_string(), body);
        assert_eq!(verify_request(&pk, &h, body.as_bytes(), now).unwrap()["type"], 1);
        // Another body under the same signature.
        assert_eq!(
            verify_request(&pk, &h, br#"{"type":3}"#, now),
            Err(CallbackError::BadSignature)
        );
        // Another key.
        let other = PublicKey(ed25519_dalek::SigningKey::from_bytes(&[8; 32]).verifying_key());
        assert_eq!(
            verify_request(&other, &h, body.as_bytes(), now),
            Err(CallbackError::BadSignature)
        );
        // A valid signature over an old timestamp.
        let old = (now - 301).to_string();
        assert_eq!(
            verify_request(&pk, &signed(&sk, &old, body), body.as_bytes(), now),
            Err(CallbackError::Stale)
        );
        // The timestamp header is part of what is signed.
        let mut moved = h.clone();
        moved.insert(TIMESTAMP_HEADER, (now + 1).to_string().parse().unwrap());
        assert_eq!(
            verify_request(&pk, &moved, body.as_bytes(), now),
            Err(CallbackError::BadSignature)
        );
        let mut unsigned = h.clone();
        unsigned.remove(SIGNATURE_HEADER);
        assert_eq!(
            verify_request(&pk, &unsigned, body.as_bytes(), now),
            Err(CallbackError::MissingHeader(SIGNATURE_HEADER))
        );
        // Signed garbage is still refused as a body.
        let h = signed(&sk, &now.to_string(), "not json");
        assert!(matches!(
            verify_request(&pk, &h, b"not json", now),
            Err(CallbackError::Malformed(_))
        ));
    }

    const TOKEN: &str = "AbCdEfGhIjKl.a.6b49d200.AAAAAAAAAAAAAAAAAAAAAA";

    fn press(custom_id: &str) -> Value {
        json!({
            "type": 3, "id": "1100000000000000001", "application_id": "1000000000000000001",
            "token": "aW50ZXJhY3Rpb246MTEwMDAw", "channel_id": "1200000000000000001",
            "data": {"custom_id": custom_id, "component_type": 2},
            "member": {"user": {"id": "80351110224678912"}},
            "message": {"id": "1300000000000000001", "channel_id": "1200000000000000001"},
        })
    }

    #[test]
    fn clicks_come_only_from_our_buttons() {
        let c = click_from_interaction(&press(TOKEN), "gateway").unwrap().unwrap();
        assert_eq!(
            (c.channel, c.user.as_str(), c.token.as_str()),
            ("discord", "80351110224678912", TOKEN)
        );
        assert_eq!(c.ack["application_id"], "1000000000000000001");
        assert_eq!(c.ack["mode"], "gateway");
        // In a DM the clicker is `user`.
        let mut dm = press(TOKEN);
        dm["member"] = Value::Null;
        dm["user"] = json!({"id": "42"});
        assert_eq!(click_from_interaction(&dm, "http").unwrap().unwrap().user, "42");
        // PING, commands, selects, and buttons that carry no token are not clicks.
        assert_eq!(click_from_interaction(&json!({"type": 1}), "http"), Ok(None));
        assert_eq!(
            click_from_interaction(&json!({"type": 2, "data": {}}), "http"),
            Ok(None)
        );
        let mut select = press(TOKEN);
        select["data"]["component_type"] = json!(3);
        assert_eq!(click_from_interaction(&select, "http"), Ok(None));
        assert_eq!(click_from_interaction(&press("approve"), "http"), Ok(None));
        assert_eq!(click_from_interaction(&press(&"a".repeat(101)), "http"), Ok(None));
        // A press without a clicker, or with a forged id shape, is malformed.
        let mut nobody = press(TOKEN);
        nobody["member"] = Value::Null;
        assert!(click_from_interaction(&nobody, "http").is_err());
        let mut named = press(TOKEN);
        named["member"]["user"]["id"] = json!("alice");
        assert!(click_from_interaction(&named, "http").is_err());
        let mut path = press(TOKEN);
        path["token"] = json!("../../channels/1/messages");
        assert!(click_from_interaction(&path, "http").is_err());
        assert!(click_from_interaction(&json!({}), "http").is_err());
    }
}
