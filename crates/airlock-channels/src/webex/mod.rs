//! Webex: cards are Adaptive Card messages sent to each approver directly (`toPersonId`);
//! clicks arrive as `attachmentActions` webhooks on `/callbacks/webex`, verified with
//! `X-Spark-Signature`, and the action itself (who pressed, which token) is then fetched from
//! `GET /v1/attachment/actions/{id}`: the webhook body alone is never trusted for it.
//!
//! - [`render`]: the shared Adaptive Card ([`crate::adaptive`]) plus an escaped markdown fallback.
//! - [`api`]: REST calls with the bot token.
//! - [`verify`]: the signature, the envelope and the action → [`Click`] extraction.
//!
//! Webex cannot change a sent card: when an approval closes, a short reply is posted in the
//! card's thread (a click on the old buttons is refused by the hub as already decided).

mod api;
pub mod render;
pub mod verify;

use airlock_vault::SecretBytes;
use http::Method;
use serde_json::json;

use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, platform};
use verify::is_id;

pub const DEFAULT_API_BASE: &str = "https://webexapis.com/v1";

pub struct WebexConfig {
    /// Default [`DEFAULT_API_BASE`]; tests point it at a fake.
    pub api_base: String,
    pub bot_token: SecretBytes,
    /// The `secret` given when the `attachmentActions` webhook was created.
    pub webhook_secret: SecretBytes,
}

impl std::fmt::Debug for WebexConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebexConfig")
            .field("api_base", &self.api_base)
            .field("bot_token", &self.bot_token)
            .field("webhook_secret", &self.webhook_secret)
            .finish()
    }
}

pub struct Webex {
    api: Api,
    webhook_secret: SecretBytes,
}

impl std::fmt::Debug for Webex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webex").finish_non_exhaustive()
    }
}

/// "roomId messageId": Webex ids are base64 and may hold '/', so a space separates them.
fn parse_ref(msg: &MessageRef) -> Result<(&str, &str), ChannelError> {
    match msg.0.split_once(' ') {
        Some((r, m)) if is_id(r) && is_id(m) => Ok((r, m)),
        _ => Err(platform("not a Webex message reference (expected ROOM MESSAGE)")),
    }
}

impl Webex {
    pub fn new(cfg: WebexConfig) -> Webex {
        Webex {
            api: Api::new(&cfg.api_base, cfg.bot_token),
            webhook_secret: cfg.webhook_secret,
        }
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_id(to) {
            return Err(platform("a Webex person id is the personId from /v1/people"));
        }
        let mut body = render::message(card, &Status::Pending { approved_by: vec![] }, Some(buttons));
        body["toPersonId"] = json!(to);
        let sent = self
            .api
            .call(Method::POST, "create message", "/messages", Some(&body))
            .await?;
        let (Some(room), Some(id)) = (
            sent["roomId"].as_str().filter(|r| is_id(r)),
            sent["id"].as_str().filter(|m| is_id(m)),
        ) else {
            return Err(platform("create message: no id or roomId in the answer"));
        };
        Ok(MessageRef(format!("{room} {id}")))
    }

    async fn update_card(&self, card: &Card, status: &Status, msg: &MessageRef) -> Result<(), ChannelError> {
        let (room, parent) = parse_ref(msg)?;
        if status.is_open() {
            // Partial approvals show on the dashboard and other channels; a reply per vote
            // would only add noise to the approver's DM.
            return Ok(());
        }
        let body = json!({"roomId": room, "parentId": parent, "markdown": render::closing(card, status)});
        self.api
            .call(Method::POST, "closing reply", "/messages", Some(&body))
            .await
            .map(drop)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        let room = click.ack["room"].as_str().filter(|r| is_id(r));
        let parent = click.ack["message"].as_str().filter(|m| is_id(m));
        let Some(room) = room else {
            return Err(platform("the click carries no room"));
        };
        let mut body = json!({"roomId": room, "markdown": render::reply_text(reply)});
        if let Some(p) = parent {
            body["parentId"] = json!(p);
        }
        self.api
            .call(Method::POST, "reply", "/messages", Some(&body))
            .await
            .map(drop)
    }

    async fn fetch(&self, click: Click, now_secs: u64) -> Result<Option<Click>, CallbackError> {
        let Some(id) = click.ack["action_id"].as_str().filter(|a| is_id(a)) else {
            return Err(CallbackError::Malformed("no action id".into()));
        };
        let path = format!("/attachment/actions/{id}");
        let action = self
            .api
            .call(Method::GET, "get attachment action", &path, None)
            .await
            .map_err(|e| CallbackError::Unavailable(e.to_string()))?;
        verify::click_from_action(&action, id, now_secs)
    }
}

impl Channel for Webex {
    fn name(&self) -> &'static str {
        "webex"
    }

    fn send<'a>(
        &'a self,
        card: &'a Card,
        buttons: &'a Buttons,
        to: &'a str,
    ) -> BoxFuture<'a, Result<MessageRef, ChannelError>> {
        Box::pin(self.send_card(card, buttons, to))
    }

    fn update<'a>(
        &'a self,
        card: &'a Card,
        status: &'a Status,
        _buttons: Option<&'a Buttons>,
        msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.update_card(card, status, msg))
    }

    fn acknowledge<'a>(&'a self, click: &'a Click, reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.ack(click, reply))
    }

    /// Authenticates the webhook; the click it returns names only the action, which
    /// [`Channel::resolve`] fetches.
    fn callback(&self, headers: &http::HeaderMap, body: &[u8], _now_secs: u64) -> Result<Option<Click>, CallbackError> {
        let envelope = verify::verify_request(self.webhook_secret.expose(), headers, body)?;
        Ok(verify::action_id(&envelope)?.map(|id| Click {
            done: Default::default(),
            channel: "webex",
            user: String::new(),
            token: String::new(),
            ack: json!({"action_id": id}),
        }))
    }

    fn resolve<'a>(&'a self, click: Click, now_secs: u64) -> BoxFuture<'a, Result<Option<Click>, CallbackError>> {
        Box::pin(self.fetch(click, now_secs))
    }
}
