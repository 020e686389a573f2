//! Slack: cards are Block Kit messages in a DM with each approver; clicks come back over
//! Socket Mode (app token, the default when configured) or signed HTTP interactivity
//! callbacks (signing secret).
//!
//! - [`render`]: the card as blocks, every agent string made visible and escaped.
//! - [`api`]: Web API calls (bearer token, `ok`/`error`, 429).
//! - [`verify`]: request signatures and the `block_actions` → [`Click`] extraction.
//! - [`socket`]: the Socket Mode reader (acks, reconnects).

mod api;
pub mod render;
mod socket;
mod verify;

use std::sync::Arc;

use airlock_vault::SecretBytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use render::blocks;
pub use verify::{MAX_SKEW_SECS, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature};

use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, platform};

pub const DEFAULT_API_BASE: &str = "https://slack.com/api";

pub struct SlackConfig {
    /// Web API base, default [`DEFAULT_API_BASE`]; tests point it at a fake.
    pub api_base: String,
    /// Bot token (`xoxb-…`) for chat.* and conversations.open.
    pub bot_token: SecretBytes,
    /// App-level token (`xapp-…`): Socket Mode.
    pub app_token: Option<SecretBytes>,
    /// Signing secret: HTTP interactivity callbacks.
    pub signing_secret: Option<SecretBytes>,
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("api_base", &self.api_base)
            .field("bot_token", &self.bot_token)
            .field("app_token", &self.app_token)
            .field("signing_secret", &self.signing_secret)
            .finish()
    }
}

pub struct Slack {
    api: Api,
    app_token: Option<SecretBytes>,
    signing_secret: Option<SecretBytes>,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("socket_mode", &self.app_token.is_some())
            .field("http_callbacks", &self.signing_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// Slack ids (`D…`, `C…`) are alphanumeric and `ts` is digits and a dot: checking this keeps
/// "channel/ts" unambiguous.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_ts(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn parse_ref(msg: &MessageRef) -> Result<(&str, &str), ChannelError> {
    match msg.0.split_once('/') {
        Some((c, ts)) if is_id(c) && is_ts(ts) => Ok((c, ts)),
        _ => Err(platform("not a Slack message reference (expected CHANNEL/ts)")),
    }
}

impl Slack {
    pub fn new(cfg: SlackConfig) -> Slack {
        Slack {
            api: Api::new(&cfg.api_base, cfg.bot_token),
            app_token: cfg.app_token,
            signing_secret: cfg.signing_secret,
        }
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        let opened = self.api.call("conversations.open", &json!({"users": to})).await?;
        let channel = opened["channel"]["id"]
            .as_str()
            .filter(|c| is_id(c))
            .ok_or_else(|| platform("conversations.open: no channel id in the answer"))?;
        let status = Status::Pending { approved_by: vec![] };
        let body = json!({
            "channel": channel,
            "text": render::fallback(card, &status),
            "blocks": render::blocks(card, &status, Some(buttons)),
            // Agent URLs must not be fetched by Slack's unfurler.
            "unfurl_links": false,
            "unfurl_media": false,
        });
        let posted = self.api.call("chat.postMessage", &body).await?;
        let ts = posted["ts"]
            .as_str()
            .filter(|t| is_ts(t))
            .ok_or_else(|| platform("chat.postMessage: no ts in the answer"))?;
        let channel = posted["channel"].as_str().filter(|c| is_id(c)).unwrap_or(channel);
        let msg = MessageRef(format!("{channel}/{ts}"));
        Ok(msg)
    }

    async fn update_card(
        &self,
        card: &Card,
        status: &Status,
        buttons: Option<&Buttons>,
        msg: &MessageRef,
    ) -> Result<(), ChannelError> {
        let (channel, ts) = parse_ref(msg)?;
        let open = status.is_open();
        let buttons = buttons.filter(|_| open);
        if open && buttons.is_none() {
            // Re-rendering without them would take the buttons off a card still waiting for
            // votes; the message as sent is the lesser evil.
            tracing::debug!(card = %card.id, "slack: buttons of an open card unknown; not updating it");
            return Ok(());
        }
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": render::fallback(card, status),
            "blocks": render::blocks(card, status, buttons),
        });
        self.api.call("chat.update", &body).await.map(drop)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        let text = render::reply_text(reply);
        let channel = click.ack["channel"].as_str().filter(|c| is_id(c));
        if let Some(url) = click.ack["response_url"].as_str() {
            if self.api.trusted_response_url(url) {
                let body = json!({"response_type": "ephemeral", "replace_original": false, "text": text});
                match self.api.post_response_url(url, &body).await {
                    Ok(()) => return Ok(()),
                    // Response URLs expire (30 minutes, five uses): fall back when we can.
                    Err(e) if channel.is_some() => {
                        tracing::warn!(error = %e, "slack: response_url failed; answering with chat.postEphemeral")
                    }
                    Err(e) => return Err(e),
                }
            } else {
                tracing::warn!("slack: response_url is not a Slack hooks URL; using chat.postEphemeral");
            }
        }
        let channel = channel.ok_or_else(|| platform("no channel to answer the click in"))?;
        let body = json!({"channel": channel, "user": click.user, "text": text});
        self.api.call("chat.postEphemeral", &body).await.map(drop)
    }
}

impl Channel for Slack {
    fn name(&self) -> &'static str {
        "slack"
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
        let secret = self.signing_secret.as_ref().ok_or(CallbackError::NotSupported)?;
        verify::callback(secret.expose(), headers, body, now_secs)
    }

    fn start(self: Arc<Self>, clicks: mpsc::Sender<Click>, shutdown: watch::Receiver<bool>) {
        let Some(app_token) = self.app_token.clone() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(socket::run(self, app_token, clicks, shutdown));
            }
            Err(_) => tracing::error!("slack: Socket Mode needs a Tokio runtime; not started"),
        }
    }
}

/// For the Socket Mode reader: the same extraction as HTTP callbacks.
fn click_from_payload(v: &Value) -> Result<Option<Click>, CallbackError> {
    verify::click_from_payload(v)
}
