//! A [`Card`] as a Teams message: the Adaptive Card of [`crate::adaptive`] (agent text only in
//! plain-text `TextRun`s) with its buttons as `Action.Execute` (Universal Actions, card
//! version 1.4), each carrying `{"airlock": <signed token>}` as its data and nothing else.
//! The notification preview (`summary`) is fixed text of ours.

use serde_json::{Value, json};

use crate::adaptive::{self, CONTENT_TYPE};
use crate::{Buttons, Card, Reply, Status};

/// The invoke response type that replaces the pressed card.
pub const INVOKE_CARD: &str = "application/vnd.microsoft.card.adaptive";
/// The invoke response type that shows a short text and leaves the card as it is.
pub const INVOKE_MESSAGE: &str = "application/vnd.microsoft.activity.message";

/// The Adaptive Card for Teams.
pub fn card(card: &Card, status: &Status, buttons: Option<&Buttons>) -> Value {
    let mut c = adaptive::card(card, status, buttons);
    c["version"] = json!("1.4");
    for a in c.get_mut("actions").and_then(Value::as_array_mut).into_iter().flatten() {
        a["verb"] = a["id"].clone();
        a["type"] = json!("Action.Execute");
    }
    c
}

/// The message activity carrying `content` (an Adaptive Card).
pub fn activity(content: Value) -> Value {
    json!({
        "type": "message",
        "summary": "airlock: an agent's request needs approval",
        "attachments": [{"contentType": CONTENT_TYPE, "content": content}],
    })
}

/// The invoke response to a press that counted: the card as last rendered without buttons
/// ([`card`] with no buttons), with the answer.
pub fn invoke_card(mut c: Value, reply: &Reply) -> Value {
    if let Some(body) = c["body"].as_array_mut() {
        body.push(json!({"type": "RichTextBlock", "inlines": [
            {"type": "TextRun", "text": adaptive::cut(&reply.text, 500, 1, true), "weight": "Bolder"}
        ]}));
    }
    json!({"statusCode": 200, "type": INVOKE_CARD, "value": c})
}

/// The invoke response that only tells the presser something (a refusal, or a card this
/// replica did not send).
pub fn invoke_message(reply: &Reply) -> Value {
    json!({"statusCode": 200, "type": INVOKE_MESSAGE, "value": adaptive::cut(&reply.text, 500, 1, true)})
}

/// A plain-text message (an answer to an `Action.Submit`, the greeting).
pub fn text(text: &str, reply_to: Option<&str>) -> Value {
    let mut m = json!({"type": "message", "textFormat": "plain", "text": adaptive::cut(text, 1000, 1, true)});
    if let Some(r) = reply_to {
        m["replyToId"] = json!(r);
    }
    m
}
