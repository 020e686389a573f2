//! Discord: cards are messages (an embed and an action row of buttons) in a DM with each
//! approver; clicks come back over the Gateway WebSocket (the default: no public URL) or to
//! the HTTP interactions endpoint `/callbacks/discord` (Ed25519-signed, when a public key is
//! configured).
//!
//! - [`render`]: the card as an embed, every agent string inert.
//! - [`api`]: REST calls (bot token, rate limits).
//! - [`verify`]: request signatures and the interaction → [`Click`] extraction.
//! - [`gateway`]: the Gateway reader (identify, heartbeat, resume, `INTERACTION_CREATE`).
//! - [`session`]: the Gateway session kept in the store, resumed by the next reader.
//!
//! Every click is answered within Discord's 3-second window. Over the Gateway the reader
//! answers with a deferred update (type 6) before the hub applies the click, and the clicker
//! is told the outcome in an ephemeral follow-up; over HTTP the outcome is the response itself
//! (an ephemeral message). Either way the card is edited in place by [`Channel::update`].

mod api;
mod gateway;
pub mod render;
mod session;
pub mod verify;

use std::sync::Arc;

use airlock_vault::SecretBytes;
use http::Method;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use verify::{PublicKey, click_from_interaction, verify_request};

use crate::memory::Memory;
use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, Auth, platform};
use verify::is_snowflake;

pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";
/// Interaction callback types.
pub const PONG: u64 = 1;
pub const CHANNEL_MESSAGE_WITH_SOURCE: u64 = 4;
pub const DEFERRED_UPDATE_MESSAGE: u64 = 6;
/// Message flag: only the clicker sees it.
pub const EPHEMERAL: u64 = 1 << 6;

pub struct DiscordConfig {
    /// REST base including the version, default [`DEFAULT_API_BASE`]; tests point it at a fake.
    pub api_base: String,
    pub bot_token: SecretBytes,
    /// Read clicks over the Gateway WebSocket.
    pub gateway: bool,
    /// The application's public key: HTTP interactions on `/callbacks/discord`.
    pub public_key: Option<PublicKey>,
    /// Where the Gateway session is kept (the store, shared by replicas): the next reader
    /// resumes it.
    pub memory: Arc<dyn Memory>,
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("api_base", &self.api_base)
            .field("bot_token", &self.bot_token)
            .field("gateway", &self.gateway)
            .field("public_key", &self.public_key)
            .finish()
    }
}

pub struct Discord {
    api: Api,
    gateway: bool,
    public_key: Option<PublicKey>,
    memory: Arc<dyn Memory>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord")
            .field("gateway", &self.gateway)
            .field("http_interactions", &self.public_key.is_some())
            .finish_non_exhaustive()
    }
}

fn parse_ref(msg: &MessageRef) -> Result<(&str, &str), ChannelError> {
    match msg.0.split_once('/') {
        Some((c, m)) if is_snowflake(c) && is_snowflake(m) => Ok((c, m)),
        _ => Err(platform("not a Discord message reference (expected CHANNEL/MESSAGE)")),
    }
}

fn ack_str<'a>(click: &'a Click, key: &str) -> Result<&'a str, ChannelError> {
    click.ack[key]
        .as_str()
        .ok_or_else(|| platform(format!("the click carries no {key}")))
}

impl Discord {
    pub fn new(cfg: DiscordConfig) -> Discord {
        Discord {
            api: Api::new(&cfg.api_base, cfg.bot_token),
            gateway: cfg.gateway,
            public_key: cfg.public_key,
            memory: cfg.memory,
        }
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_snowflake(to) {
            return Err(platform(
                "a Discord user id is a number (Developer Mode → Copy User ID)",
            ));
        }
        let dm = self
            .api
            .call(
                Method::POST,
                "create DM",
                "/users/@me/channels",
                Auth::Bot,
                Some(&json!({"recipient_id": to})),
            )
            .await?;
        let channel = dm["id"]
            .as_str()
            .filter(|c| is_snowflake(c))
            .ok_or_else(|| platform("create DM: no channel id in the answer"))?;
        let status = Status::Pending { approved_by: vec![] };
        let body = render::message(card, &status, Some(buttons));
        let sent = self
            .api
            .call(
                Method::POST,
                "create message",
                &format!("/channels/{channel}/messages"),
                Auth::Bot,
                Some(&body),
            )
            .await?;
        let id = sent["id"]
            .as_str()
            .filter(|m| is_snowflake(m))
            .ok_or_else(|| platform("create message: no message id in the answer"))?;
        Ok(MessageRef(format!("{channel}/{id}")))
    }

    async fn update_card(
        &self,
        card: &Card,
        status: &Status,
        buttons: Option<&Buttons>,
        msg: &MessageRef,
    ) -> Result<(), ChannelError> {
        let (channel, id) = parse_ref(msg)?;
        if status.is_open() && buttons.is_none() {
            // Editing without them would take the buttons off a card still waiting for votes.
            tracing::debug!(card = %card.id, "discord: buttons of an open card unknown; not updating it");
            return Ok(());
        }
        let body = render::message(card, status, buttons);
        self.api
            .call(
                Method::PATCH,
                "edit message",
                &format!("/channels/{channel}/messages/{id}"),
                Auth::Bot,
                Some(&body),
            )
            .await
            .map(drop)
    }

    /// Answers an interaction with a deferred update (type 6): Discord stops waiting, the
    /// clicker sees no error, and the card is edited once the hub decided.
    pub(crate) async fn defer(&self, click: &Click) -> Result<(), ChannelError> {
        let id = ack_str(click, "interaction_id")?;
        let token = ack_str(click, "interaction_token")?;
        self.api
            .call(
                Method::POST,
                "interaction callback",
                &format!("/interactions/{id}/{token}/callback"),
                Auth::None,
                Some(&json!({"type": DEFERRED_UPDATE_MESSAGE})),
            )
            .await
            .map(drop)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        if click.ack["mode"] == "http" {
            // Answered in the HTTP response already (see `callback_answer`).
            return Ok(());
        }
        let app = ack_str(click, "application_id")?;
        let token = ack_str(click, "interaction_token")?;
        let body = json!({
            "content": render::reply_text(reply),
            "flags": EPHEMERAL,
            "allowed_mentions": {"parse": []},
        });
        self.api
            .call(
                Method::POST,
                "follow-up message",
                &format!("/webhooks/{app}/{token}"),
                Auth::None,
                Some(&body),
            )
            .await
            .map(drop)
    }
}

impl Channel for Discord {
    fn name(&self) -> &'static str {
        "discord"
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
        buttons: Option<&'a Buttons>,
        msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.update_card(card, status, buttons, msg))
    }

    fn acknowledge<'a>(&'a self, click: &'a Click, reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.ack(click, reply))
    }

    fn callback(&self, headers: &http::HeaderMap, body: &[u8], now_secs: u64) -> Result<Option<Click>, CallbackError> {
        let key = self.public_key.as_ref().ok_or(CallbackError::NotSupported)?;
        let v = verify::verify_request(key, headers, body, now_secs)?;
        click_from_interaction(&v, "http")
    }

    /// PING → PONG; a click → the outcome, to the clicker alone, as the interaction's own
    /// answer (a follow-up could race this response: Discord takes the interaction as
    /// acknowledged only once it has the answer). The card itself is edited by `update`.
    fn callback_answer(&self, body: &[u8], reply: Option<&Reply>) -> Option<Value> {
        if let Some(reply) = reply {
            return Some(json!({"type": CHANNEL_MESSAGE_WITH_SOURCE, "data": {
                "content": render::reply_text(reply),
                "flags": EPHEMERAL,
                "allowed_mentions": {"parse": []},
            }}));
        }
        let v: Value = serde_json::from_slice(body).ok()?;
        match v["type"].as_u64() {
            Some(verify::PING) => Some(json!({"type": PONG})),
            // Not one of our buttons: say so to the clicker alone.
            _ => Some(json!({"type": CHANNEL_MESSAGE_WITH_SOURCE, "data": {
                "content": "airlock only handles its own approval buttons.",
                "flags": EPHEMERAL,
                "allowed_mentions": {"parse": []},
            }})),
        }
    }

    fn start(self: Arc<Self>, clicks: mpsc::Sender<Click>, shutdown: watch::Receiver<bool>) {
        if !self.gateway {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(gateway::run(self, clicks, shutdown));
            }
            Err(_) => tracing::error!("discord: the Gateway reader needs a Tokio runtime; not started"),
        }
    }
}
