//! Votes in a `/sync` response (pure): the approver's own `m.reaction` (✅ approve, ❌ deny)
//! on a card, or a message `approve CODE` / `deny CODE` / `grant CODE`. The voter is the
//! event's `sender`, as the homeserver asserts it; the bot's own events (its seeded
//! reactions, its cards and replies) are never votes.

use serde_json::Value;

use crate::ballot;
use crate::token::Decision;

/// Matrix ids: a sigil, a localpart or opaque part, `:`, a server name; at most 255 bytes.
fn is_id(s: &str, sigil: char) -> bool {
    s.len() <= 255 && s.starts_with(sigil) && s.len() > 1 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `@localpart:server`.
pub fn is_user_id(s: &str) -> bool {
    is_id(s, '@') && s.contains(':')
}

/// `!opaque:server`.
pub fn is_room_id(s: &str) -> bool {
    is_id(s, '!') && s.contains(':')
}

/// `$opaque` (room version 4+) or `$opaque:server`.
pub fn is_event_id(s: &str) -> bool {
    is_id(s, '$')
}

/// What a vote names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A reaction on this card event.
    Card(String),
    /// A typed code.
    Code(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub sender: String,
    pub room: String,
    /// The voting event (answered with a reply to it).
    pub event: String,
    pub target: Target,
    pub decision: Decision,
}

/// The decision a reaction key means.
pub fn reaction_decision(key: &str) -> Option<Decision> {
    match key.trim_end_matches('\u{fe0f}') {
        "✅" | "✔" | "👍" => Some(Decision::Approve),
        "❌" | "✖" | "👎" => Some(Decision::Deny),
        _ => None,
    }
}

fn vote_of(ev: &Value, room: &str, bot: &str) -> Option<Vote> {
    let sender = ev["sender"].as_str().filter(|s| is_user_id(s) && *s != bot)?;
    let event = ev["event_id"].as_str().filter(|e| is_event_id(e))?;
    let content = &ev["content"];
    let (target, decision) = match ev["type"].as_str()? {
        "m.reaction" => {
            let rel = &content["m.relates_to"];
            if rel["rel_type"] != "m.annotation" {
                return None;
            }
            let card = rel["event_id"].as_str().filter(|e| is_event_id(e))?;
            (Target::Card(card.to_string()), reaction_decision(rel["key"].as_str()?)?)
        }
        "m.room.message" => {
            // Edits are not votes: only what the approver first sent counts.
            if content["m.relates_to"]["rel_type"] == "m.replace" || content["msgtype"] != "m.text" {
                return None;
            }
            let (d, code) = ballot::command(content["body"].as_str()?)?;
            (Target::Code(code), d)
        }
        _ => return None,
    };
    Some(Vote {
        sender: sender.to_string(),
        room: room.to_string(),
        event: event.to_string(),
        target,
        decision,
    })
}

/// The votes in a sync response's joined rooms, in timeline order, and its `next_batch`.
pub fn votes(sync: &Value, bot: &str) -> (Vec<Vote>, Option<String>) {
    let next = sync["next_batch"]
        .as_str()
        .filter(|t| !t.is_empty() && t.len() <= 1024)
        .map(str::to_string);
    let mut out = Vec::new();
    if let Some(rooms) = sync["rooms"]["join"].as_object() {
        for (room, r) in rooms {
            if !is_room_id(room) {
                continue;
            }
            for ev in r["timeline"]["events"].as_array().into_iter().flatten() {
                if let Some(v) = vote_of(ev, room, bot) {
                    out.push(v);
                }
            }
        }
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOT: &str = "@airlock:example.org";

    fn sync(events: Value) -> Value {
        json!({"next_batch": "s72595_4483_1934", "rooms": {"join": {"!dm:example.org": {"timeline": {"events": events}}}}})
    }

    #[test]
    fn reactions_and_codes_from_others_are_votes() {
        let s = sync(json!([
            {"type": "m.reaction", "sender": "@alice:example.org", "event_id": "$r1",
             "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$card", "key": "✅\u{fe0f}"}}},
            {"type": "m.reaction", "sender": BOT, "event_id": "$seed",
             "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$card", "key": "✅"}}},
            {"type": "m.reaction", "sender": "@alice:example.org", "event_id": "$r2",
             "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$card", "key": "🎉"}}},
            {"type": "m.room.message", "sender": "@alice:example.org", "event_id": "$m1",
             "content": {"msgtype": "m.text", "body": "> <@airlock:example.org> card\n\ndeny K7QX2M9P"}},
            {"type": "m.room.message", "sender": "@alice:example.org", "event_id": "$m2",
             "content": {"msgtype": "m.text", "body": "* approve K7QX2M9P",
                         "m.relates_to": {"rel_type": "m.replace", "event_id": "$m1"}}},
            {"type": "m.room.message", "sender": "@alice:example.org", "event_id": "$m3",
             "content": {"msgtype": "m.notice", "body": "approve K7QX2M9P"}},
            {"type": "m.room.message", "sender": BOT, "event_id": "$m4",
             "content": {"msgtype": "m.text", "body": "approve K7QX2M9P"}},
        ]));
        let (v, next) = votes(&s, BOT);
        assert_eq!(next.as_deref(), Some("s72595_4483_1934"));
        assert_eq!(
            v,
            vec![
                Vote {
                    sender: "@alice:example.org".into(),
                    room: "!dm:example.org".into(),
                    event: "$r1".into(),
                    target: Target::Card("$card".into()),
                    decision: Decision::Approve
                },
                Vote {
                    sender: "@alice:example.org".into(),
                    room: "!dm:example.org".into(),
                    event: "$m1".into(),
                    target: Target::Code("K7QX2M9P".into()),
                    decision: Decision::Deny
                },
            ]
        );
        assert_eq!(votes(&json!({}), BOT), (vec![], None));
        assert!(is_user_id("@a:b") && !is_user_id("@a") && !is_user_id("a:b") && !is_user_id("@a b:c"));
    }
}
