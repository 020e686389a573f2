//! ntfy (<https://ntfy.sh>, or a server of your own): each approver gets the card as a
//! notification on their own topic, with `http` action buttons that POST a signed token to
//! the control plane's `/callbacks/ntfy`. The approver's phone must reach that URL.
//!
//! ntfy vouches for nobody: whoever can read a topic can press its buttons. So the tokens on
//! a topic are minted for its person alone ([`Channel::binds_tokens`]), and topics must be
//! access-controlled (see docs/channels/ntfy.md).
//!
//! - [`render`]: the card as a publish-as-JSON message.
//! - [`api`]: publishing, with the access token.
//! - [`verify`]: a press → [`Click`] (pure).

mod api;
pub mod render;
pub mod verify;

use airlock_vault::SecretBytes;

pub use verify::{is_topic, press, press_body};

use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, platform};

pub(crate) const NAME: &str = "ntfy";
pub const DEFAULT_SERVER: &str = "https://ntfy.sh";
/// ntfy's "high" priority: a long vibration burst and a pop-over notification.
pub const DEFAULT_PRIORITY: u8 = 4;

pub struct NtfyConfig {
    /// The ntfy server, default [`DEFAULT_SERVER`].
    pub server: String,
    /// Access token (`tk_…`) of a user that may write to the approvers' topics.
    pub token: Option<SecretBytes>,
    /// The control plane's public base URL, as the approvers' phones reach it.
    pub public_url: String,
    /// 1-5.
    pub priority: u8,
}

impl std::fmt::Debug for NtfyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtfyConfig")
            .field("server", &self.server)
            .field("token", &self.token)
            .field("public_url", &self.public_url)
            .field("priority", &self.priority)
            .finish()
    }
}

pub struct Ntfy {
    api: Api,
    callback_url: String,
    priority: u8,
}

impl std::fmt::Debug for Ntfy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ntfy")
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

/// "topic/message id": topics and ids never contain '/'.
fn parse_ref(msg: &MessageRef) -> Result<&str, ChannelError> {
    match msg.0.split_once('/') {
        Some((topic, _)) if is_topic(topic) => Ok(topic),
        _ => Err(platform("not an ntfy message reference (expected TOPIC/id)")),
    }
}

impl Ntfy {
    pub fn new(cfg: NtfyConfig) -> Ntfy {
        Ntfy {
            api: Api::new(&cfg.server, cfg.token),
            callback_url: format!("{}/callbacks/{NAME}", cfg.public_url.trim_end_matches('/')),
            priority: cfg.priority.clamp(1, 5),
        }
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_topic(to) {
            return Err(platform("the approver's ntfy id is not a topic name"));
        }
        let id = self
            .api
            .publish(&render::card(to, card, buttons, &self.callback_url, self.priority))
            .await?;
        Ok(MessageRef(format!("{to}/{id}")))
    }

    async fn update_card(&self, card: &Card, status: &Status, msg: &MessageRef) -> Result<(), ChannelError> {
        // Open statuses ("1 of 2 approvals") would only add noise; the card keeps its buttons.
        if status.is_open() {
            return Ok(());
        }
        let topic = parse_ref(msg)?;
        self.api.publish(&render::closed(topic, card, status)).await.map(drop)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        // Only a counted vote is answered on the topic: its token proved the topic is its
        // person's. A refused press (any topic an outsider names) is answered in the HTTP
        // response alone, so the endpoint cannot be used to write to arbitrary topics.
        if !reply.ok {
            return Ok(());
        }
        let topic = click.ack["topic"]
            .as_str()
            .filter(|t| is_topic(t))
            .ok_or_else(|| platform("no topic to answer on"))?;
        self.api.publish(&render::reply(topic, reply)).await.map(drop)
    }
}

impl Channel for Ntfy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binds_tokens(&self) -> bool {
        true
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

    fn callback(&self, headers: &http::HeaderMap, body: &[u8], _now_secs: u64) -> Result<Option<Click>, CallbackError> {
        press(headers, body)
    }

    fn refusal_status(&self) -> u16 {
        // The ntfy app clears a notification only on 2xx and shows the failure otherwise.
        403
    }
}
