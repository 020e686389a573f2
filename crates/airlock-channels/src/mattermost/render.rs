//! The card as a Mattermost message attachment. Mattermost renders attachment text as
//! Markdown (links, @-mentions, emphasis), so every agent-controlled string goes into one
//! fenced code block, where none of that applies: the plain-text card of
//! [`crate::ntfy::render::message`] (visible escapes, one-line fields, quoted body, the
//! explicit "N more bytes" cut), with any run of three backticks replaced by a look-alike
//! that cannot close the fence. Title, fallback and buttons are fixed strings; buttons carry
//! exactly the signed tokens (and the callback secret) in their server-side context.

use serde_json::{Value, json};

use crate::render::duration;
use crate::slack::render::FENCE_STANDIN;
use crate::{Buttons, Card, Reply, Status};

const COLOR_PENDING: &str = "#e8a317";
const COLOR_APPROVED: &str = "#2eb67d";
const COLOR_CLOSED: &str = "#9e9e9e";

/// The agent's text in a code block nothing inside can close.
fn fenced(text: &str) -> String {
    format!("```text\n{}\n```", text.replace("```", FENCE_STANDIN))
}

fn action(id: &str, name: &str, style: &str, url: &str, secret: &str, token: &str) -> Value {
    json!({
        "id": id,
        "type": "button",
        "name": name,
        "style": style,
        "integration": { "url": url, "context": { "secret": secret, "token": token } },
    })
}

/// The post's `props`: one attachment, with our buttons while the status is open.
pub fn props(card: &Card, status: &Status, buttons: Option<(&Buttons, &str, &str)>) -> Value {
    let color = match status {
        Status::Pending { .. } => COLOR_PENDING,
        Status::Approved { .. } => COLOR_APPROVED,
        _ => COLOR_CLOSED,
    };
    let mut att = json!({
        "fallback": "airlock: a request waits for your approval",
        "color": color,
        "title": "airlock: approval needed",
        "text": fenced(&crate::ntfy::render::message(card, status)),
    });
    if let (true, Some((b, url, secret))) = (status.is_open(), buttons) {
        let mut actions = vec![
            action("approve", "Approve", "success", url, secret, &b.approve),
            action("deny", "Deny", "danger", url, secret, &b.deny),
        ];
        if let Some(g) = &b.grant {
            let label = card.grant_secs.map_or("Approve and allow similar".to_string(), |s| {
                format!("Approve for {}", duration(s))
            });
            actions.push(action("grant", &label, "default", url, secret, g));
        }
        att["actions"] = Value::Array(actions);
    }
    json!({ "attachments": [att] })
}

/// The callback's answer: an ephemeral message to the clicker when the vote did not count.
pub fn answer(reply: &Reply) -> Value {
    if reply.ok {
        return json!({});
    }
    json!({ "ephemeral_text": fenced(&crate::render::one_line_cut(&reply.text, 1000)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_hold() {
        let f = fenced("a```b\n````\n```");
        assert_eq!(f.matches("```").count(), 2, "{f}");
    }
}
