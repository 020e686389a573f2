//! Vote codes, for channels where a vote is a typed reply rather than a button press (Matrix,
//! Signal): the card says "reply `approve K7QX2M9P` or `deny K7QX2M9P`". The code is random
//! (40 bits, Crockford base32) and only a handle: the channel keeps, in its
//! [`Memory`](crate::memory::Memory), the card's signed tokens under it — minted for the one
//! person the card was sent to ([`Channel::binds_tokens`](crate::Channel::binds_tokens)) — and
//! a reply turns into a click carrying the token of the decision it names. So a code, guessed
//! or copied, votes only as the person it was minted for, only on its approval, and only for
//! the decision typed; the hub still checks the token, the voter's identity and role.

use serde::{Deserialize, Serialize};

use crate::Buttons;
use crate::token::Decision;

pub const CODE_LEN: usize = 8;
/// Crockford's base32: no I, L, O or U, so a code read aloud or retyped survives.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh random code.
pub fn new_code() -> String {
    let bytes: [u8; CODE_LEN] = rand::random();
    bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect()
}

pub fn is_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// A typed vote: `approve CODE`, `deny CODE` or `grant CODE`, case-insensitive, alone on the
/// first line that is not a quote (`> …`, a reply's fallback). Anything else is no vote.
pub fn command(text: &str) -> Option<(Decision, String)> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('>'))?;
    let mut words = line.split_whitespace();
    let (Some(word), Some(code), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    let decision = match word.to_ascii_lowercase().as_str() {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        "grant" => Decision::Grant,
        _ => return None,
    };
    let code = code.trim_matches('`').to_ascii_uppercase();
    is_code(&code).then_some((decision, code))
}

/// A card's tokens as a channel keeps them under its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    /// Where the card went (the platform address of its one voter).
    pub voter: String,
    pub approve: String,
    pub deny: String,
    pub grant: Option<String>,
}

impl Ballot {
    pub fn new(voter: &str, b: &Buttons) -> Ballot {
        Ballot {
            voter: voter.to_string(),
            approve: b.approve.clone(),
            deny: b.deny.clone(),
            grant: b.grant.clone(),
        }
    }

    /// The token for `d`; empty (refused by the hub, and recorded) when the card offers none.
    pub fn token(&self, d: Decision) -> String {
        match d {
            Decision::Approve => self.approve.clone(),
            Decision::Deny => self.deny.clone(),
            Decision::Grant => self.grant.clone().unwrap_or_default(),
        }
    }
}

/// The instruction line a card carries ("Reply approve CODE …"), plain text.
pub fn instructions(code: &str, grant: Option<&str>) -> String {
    let mut s = format!("Reply \"approve {code}\" to approve or \"deny {code}\" to deny");
    if let Some(g) = grant {
        s.push_str(&format!(" (\"grant {code}\": {g})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_and_commands_strict() {
        let (a, b) = (new_code(), new_code());
        assert!(is_code(&a) && is_code(&b) && a != b);
        assert_eq!(
            command("approve k7qx2m9p"),
            Some((Decision::Approve, "K7QX2M9P".into()))
        );
        assert_eq!(
            command("> <@bot> card\n\n  DENY `K7QX2M9P`  "),
            Some((Decision::Deny, "K7QX2M9P".into()))
        );
        assert_eq!(command("grant K7QX2M9P"), Some((Decision::Grant, "K7QX2M9P".into())));
        for no in [
            "approve",
            "approve K7QX2M9P please",
            "approve K7QX2M9",
            "approve K7QX2M9PP",
            "approve K7QX2M9I",
            "yes K7QX2M9P",
            "",
            "> approve K7QX2M9P",
        ] {
            assert_eq!(command(no), None, "{no:?}");
        }
        let b = Ballot {
            voter: "v".into(),
            approve: "a".into(),
            deny: "d".into(),
            grant: None,
        };
        assert_eq!(
            (b.token(Decision::Approve), b.token(Decision::Grant)),
            ("a".into(), String::new())
        );
    }
}
