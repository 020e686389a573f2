//! Signed button tokens (invariant 7): each button carries `id.d.exp.mac`, where the MAC
//! (HMAC-SHA256, truncated to 128 bits) binds the approval id, the request digest, the
//! decision and the expiry. The digest itself is not in the token (the hub knows it by id),
//! which keeps tokens inside Telegram's 64-byte `callback_data`.
//!
//! A token is only a capability to *offer* a decision: the hub still maps the clicker to a
//! person with a required role, and one person's vote counts once.
//!
//! Channels whose clicks carry no identity the platform vouches for (an ntfy action anyone
//! reading the topic can press) get *held* tokens ([`sign_for`]): the MAC also binds the
//! holder (channel and person), so a token counts only for the person it was minted for. The
//! two kinds never verify as each other: a held MAC covers one more length-prefixed field.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest token this module produces (Telegram's `callback_data` limit is 64 bytes).
pub const MAX_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Deny,
    /// Approve, and let matching requests through for the rule's grant period.
    Grant,
}

impl Decision {
    fn code(self) -> char {
        match self {
            Decision::Approve => 'a',
            Decision::Deny => 'd',
            Decision::Grant => 'g',
        }
    }

    fn from_code(c: &str) -> Option<Decision> {
        match c {
            "a" => Some(Decision::Approve),
            "d" => Some(Decision::Deny),
            "g" => Some(Decision::Grant),
            _ => None,
        }
    }
}

/// What an unverified token claims. Only [`Claims::verify`] makes it trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub id: String,
    pub decision: Decision,
    pub expires_secs: u64,
    mac: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed button token")]
    Malformed,
    #[error("button token signature does not match this request")]
    BadSignature,
    #[error("button token has expired")]
    Expired,
}

fn mac(
    key: &[u8],
    id: &str,
    digest: &str,
    holder: Option<&str>,
    decision: Decision,
    expires_secs: u64,
) -> Hmac<Sha256> {
    // A key of any length is valid for HMAC, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    // Length-prefixed fields: no two distinct inputs share an encoding (a held token's input
    // is longer by the holder's field, so it never equals an unheld one's).
    for field in [Some(id), Some(digest), holder].into_iter().flatten() {
        m.update(&(field.len() as u32).to_be_bytes());
        m.update(field.as_bytes());
    }
    m.update(&[decision.code() as u8]);
    m.update(&expires_secs.to_be_bytes());
    m
}

/// Signs a button. `id` must be URL-safe and short (the hub uses 18 hex digits).
pub fn sign(key: &[u8], id: &str, digest: &str, decision: Decision, expires_secs: u64) -> String {
    sign_inner(key, id, digest, None, decision, expires_secs)
}

/// Signs a button that counts only for `holder` (see [`holder`]); same shape and length.
pub fn sign_for(key: &[u8], id: &str, digest: &str, holder: &str, decision: Decision, expires_secs: u64) -> String {
    sign_inner(key, id, digest, Some(holder), decision, expires_secs)
}

/// The holder a channel's token is bound to: the channel and the person's configured name.
pub fn holder(channel: &str, person: &str) -> String {
    format!("{channel}/{person}")
}

fn sign_inner(
    key: &[u8],
    id: &str,
    digest: &str,
    holder: Option<&str>,
    decision: Decision,
    expires_secs: u64,
) -> String {
    let tag = URL_SAFE_NO_PAD.encode(
        &mac(key, id, digest, holder, decision, expires_secs)
            .finalize()
            .into_bytes()[..16],
    );
    format!("{id}.{}.{expires_secs:x}.{tag}", decision.code())
}

/// Equality that takes the same time wherever the inputs differ (secrets a callback carries
/// back: a Mattermost callback secret, a Telegram webhook secret, a WhatsApp verify token, a
/// CSRF field): both sides are MACed under one key and the tags compared with `verify_slice`.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let tag = |m: &[u8]| {
        let mut h = <Hmac<Sha256> as Mac>::new_from_slice(b"airlock constant-time compare")
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        h.update(m);
        h
    };
    tag(a).verify_slice(&tag(b).finalize().into_bytes()).is_ok()
}

impl Claims {
    /// Splits a token into its claims without trusting them.
    pub fn parse(token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_LEN {
            return Err(TokenError::Malformed);
        }
        let mut it = token.split('.');
        let (Some(id), Some(d), Some(exp), Some(tag), None) = (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return Err(TokenError::Malformed);
        };
        let ok_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let decision = Decision::from_code(d).ok_or(TokenError::Malformed)?;
        let expires_secs = u64::from_str_radix(exp, 16).map_err(|_| TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
        if !ok_id || mac.len() != 16 {
            return Err(TokenError::Malformed);
        }
        Ok(Claims {
            id: id.to_string(),
            decision,
            expires_secs,
            mac,
        })
    }

    /// Checks the MAC against the digest the hub holds for this id, then the expiry.
    pub fn verify(&self, key: &[u8], digest: &str, now_secs: u64) -> Result<(), TokenError> {
        self.verify_inner(key, digest, None, now_secs)
    }

    /// [`Claims::verify`] for a token minted with [`sign_for`] for `holder`.
    pub fn verify_for(&self, key: &[u8], digest: &str, holder: &str, now_secs: u64) -> Result<(), TokenError> {
        self.verify_inner(key, digest, Some(holder), now_secs)
    }

    /// The MAC of a [`sign_for`] token alone, expired or not: for showing what a link
    /// names (how its approval ended), never for counting a vote.
    pub fn verify_mac_for(&self, key: &[u8], digest: &str, holder: &str) -> Result<(), TokenError> {
        match self.verify_inner(key, digest, Some(holder), 0) {
            Err(TokenError::Expired) => Ok(()),
            other => other,
        }
    }

    fn verify_inner(&self, key: &[u8], digest: &str, holder: Option<&str>, now_secs: u64) -> Result<(), TokenError> {
        // Constant-time comparison of the truncated tag.
        if mac(key, &self.id, digest, holder, self.decision, self.expires_secs)
            .verify_truncated_left(&self.mac)
            .is_err()
        {
            return Err(TokenError::BadSignature);
        }
        if now_secs >= self.expires_secs {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn round_trip_fits_telegram() {
        let t = sign(KEY, "AbCdEfGhIjKl", DIGEST, Decision::Grant, 1_900_000_000);
        assert!(t.len() <= MAX_LEN, "{} bytes: {t}", t.len());
        let c = Claims::parse(&t).unwrap();
        assert_eq!(c.id, "AbCdEfGhIjKl");
        assert_eq!(c.decision, Decision::Grant);
        c.verify(KEY, DIGEST, 1_800_000_000).unwrap();
    }

    #[test]
    fn bound_to_digest_decision_expiry_and_key() {
        let t = sign(KEY, "AbCdEfGhIjKl", DIGEST, Decision::Deny, 1_900_000_000);
        let c = Claims::parse(&t).unwrap();
        assert_eq!(
            c.verify(KEY, &DIGEST.replace('9', "8"), 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(c.verify(b"another key", DIGEST, 0), Err(TokenError::BadSignature));
        assert_eq!(c.verify(KEY, DIGEST, 1_900_000_000), Err(TokenError::Expired));
        // Flipping the decision letter breaks the MAC.
        let forged = t.replacen(".d.", ".a.", 1);
        assert_eq!(
            Claims::parse(&forged).unwrap().verify(KEY, DIGEST, 0),
            Err(TokenError::BadSignature)
        );
        // So does extending the expiry.
        let later = t.replacen(
            &format!(".{:x}.", 1_900_000_000u64),
            &format!(".{:x}.", 1_900_000_001u64),
            1,
        );
        assert_ne!(later, t);
        assert_eq!(
            Claims::parse(&later).unwrap().verify(KEY, DIGEST, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn held_tokens_count_only_for_their_holder() {
        let alice = holder("ntfy", "alice");
        let t = sign_for(KEY, "AbCdEfGhIjKl", DIGEST, &alice, Decision::Approve, 1_900_000_000);
        assert!(t.len() <= MAX_LEN);
        let c = Claims::parse(&t).unwrap();
        c.verify_for(KEY, DIGEST, &alice, 0).unwrap();
        for other in [holder("ntfy", "bob"), holder("email", "alice"), String::new()] {
            assert_eq!(c.verify_for(KEY, DIGEST, &other, 0), Err(TokenError::BadSignature));
        }
        // A held token is no unheld token, and the other way round.
        assert_eq!(c.verify(KEY, DIGEST, 0), Err(TokenError::BadSignature));
        let plain = sign(KEY, "AbCdEfGhIjKl", DIGEST, Decision::Approve, 1_900_000_000);
        let p = Claims::parse(&plain).unwrap();
        assert_eq!(p.verify_for(KEY, DIGEST, &alice, 0), Err(TokenError::BadSignature));
        assert_eq!(
            c.verify_for(KEY, DIGEST, &alice, 1_900_000_000),
            Err(TokenError::Expired)
        );
        // Showing what a link names needs the MAC only, expired or not.
        c.verify_mac_for(KEY, DIGEST, &alice).unwrap();
        let bob = holder("ntfy", "bob");
        assert_eq!(c.verify_mac_for(KEY, DIGEST, &bob), Err(TokenError::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for t in [
            "",
            "a.b",
            "a.x.10.AAAAAAAAAAAAAAAAAAAAAA",
            "a.a.zz.AAAAAAAAAAAAAAAAAAAAAA",
            "a.a.10.short",
            "a b.a.10.AAAAAAAAAAAAAAAAAAAAAA",
            "a.a.10.AAAAAAAAAAAAAAAAAAAAAA.x",
        ] {
            assert_eq!(Claims::parse(t), Err(TokenError::Malformed), "{t:?}");
        }
        assert_eq!(Claims::parse(&"a".repeat(100)), Err(TokenError::Malformed));
    }
}
