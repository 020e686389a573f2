//! WhatsApp Business Cloud API: each approver gets the card as an interactive reply-button
//! message (or, when their 24-hour customer-service window may be closed, the operator's
//! approved template with quick-reply buttons). A press arrives as a webhook on
//! `/callbacks/whatsapp`, signed with `X-Hub-Signature-256`; the presser is the sender's
//! `wa_id`, and a press counts only for the card it was made on: its `context.id` must be a
//! card airlock sent to that same number for the approval its token names. WhatsApp cannot
//! edit a sent message, so a closed approval gets a short reply to each card.
//!
//! - [`render`]: the compact card, the template, the replies.
//! - [`api`]: sending, with the access token.
//! - [`verify`]: signature, envelope, subscription handshake (pure).

mod api;
pub mod render;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use airlock_vault::SecretBytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::memory::{Memory, get_json, put_json};
use crate::token::Claims;
use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, OUTSIDE_WINDOW, platform};
use verify::{is_message_id, is_wa_id};

pub(crate) const NAME: &str = "whatsapp";
pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com/v21.0";
/// WhatsApp's customer-service window: free-form messages only this long after the
/// recipient's last message.
pub const WINDOW_SECS: u64 = 24 * 3600;

/// An approved message template with quick-reply buttons (see [`render::template`]).
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub language: String,
}

pub struct WhatsAppConfig {
    /// Default [`DEFAULT_API_BASE`]; tests point it at a fake.
    pub api_base: String,
    /// The business phone number's id (not the number itself).
    pub phone_number_id: String,
    /// A system user's access token with `whatsapp_business_messaging`.
    pub access_token: SecretBytes,
    /// The app secret: webhooks are signed with it.
    pub app_secret: SecretBytes,
    /// The verify token given when the webhook was subscribed.
    pub verify_token: SecretBytes,
    /// The control plane as approvers reach it: the card links to its dashboard page.
    pub public_url: String,
    pub template: Option<Template>,
    /// Which card a message id is (shared by replicas).
    pub memory: Arc<dyn Memory>,
}

pub struct WhatsApp {
    api: Api,
    phone_number_id: String,
    app_secret: SecretBytes,
    verify_token: SecretBytes,
    public_url: String,
    template: Option<Template>,
    memory: Arc<dyn Memory>,
    /// wa_id → when they last wrote to us (as this process heard it).
    seen: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsApp")
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

/// What the memory keeps for a sent card.
#[derive(Debug, Serialize, Deserialize)]
struct SentCard {
    approval: String,
}

fn card_key(message: &str) -> String {
    format!("{NAME}/card/{message}")
}

/// "wa_id wamid" (message ids may hold '/').
fn parse_ref(msg: &MessageRef) -> Result<(&str, &str), ChannelError> {
    match msg.0.split_once(' ') {
        Some((to, m)) if is_wa_id(to) && is_message_id(m) => Ok((to, m)),
        _ => Err(platform("not a WhatsApp message reference (expected WA_ID MESSAGE_ID)")),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl WhatsApp {
    pub fn new(cfg: WhatsAppConfig) -> WhatsApp {
        WhatsApp {
            api: Api::new(&cfg.api_base, &cfg.phone_number_id, cfg.access_token),
            phone_number_id: cfg.phone_number_id,
            app_secret: cfg.app_secret,
            verify_token: cfg.verify_token,
            public_url: cfg.public_url,
            template: cfg.template,
            memory: cfg.memory,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn window_open(&self, to: &str) -> bool {
        let last = self.seen.lock().ok().and_then(|m| m.get(to).copied());
        last.is_some_and(|t| now_secs().saturating_sub(t) < WINDOW_SECS - 300)
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_wa_id(to) {
            return Err(platform(
                "a WhatsApp id is the number in international form, digits only",
            ));
        }
        let interactive = render::interactive(to, card, buttons, &self.public_url);
        let template = self
            .template
            .as_ref()
            .map(|t| render::template(to, &t.name, &t.language, card, buttons, &self.public_url));
        // Free-form messages reach only a recipient who wrote within 24 hours; when this
        // process cannot tell, the approved template goes (if there is one).
        let first = match &template {
            Some(t) if !self.window_open(to) => t,
            _ => &interactive,
        };
        let sent = match self.api.send(first).await {
            Ok(id) => id,
            Err(r) if r.code == Some(OUTSIDE_WINDOW) && template.is_some() && first == &interactive => {
                let t = template.as_ref().unwrap_or(&interactive);
                self.api.send(t).await.map_err(|r| r.error)?
            }
            Err(r) => return Err(r.error),
        };
        let entry = SentCard {
            approval: card.id.clone(),
        };
        put_json(&*self.memory, &card_key(&sent), &entry)
            .await
            .map_err(|e| platform(format!("could not record the card: {e}")))?;
        Ok(MessageRef(format!("{to} {sent}")))
    }

    async fn update_card(&self, card: &Card, status: &Status, msg: &MessageRef) -> Result<(), ChannelError> {
        if status.is_open() {
            // "1 of 2" needs no message of its own; the dashboard shows it.
            return Ok(());
        }
        let (to, message) = parse_ref(msg)?;
        // The card takes no more presses.
        if let Err(e) = self.memory.remove(&card_key(message)).await {
            tracing::warn!(error = %e, "whatsapp: could not forget a closed card");
        }
        let text = render::text_message(to, &render::closing(card, status), Some(message));
        self.api.send(&text).await.map(drop).map_err(|r| r.error)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        let to = click.ack["to"]
            .as_str()
            .filter(|t| is_wa_id(t))
            .ok_or_else(|| platform("the press carries no sender"))?;
        // Answered as a reply to the card that was pressed.
        let context = click.ack["context"].as_str().filter(|m| is_message_id(m));
        let text = render::text_message(to, &render::reply_text(reply), context);
        self.api.send(&text).await.map(drop).map_err(|r| r.error)
    }

    /// A press counts only for the card it was made on: its `context.id` must be an open card
    /// airlock sent for the approval the token names. Otherwise the token is dropped, so the
    /// hub refuses (and records) the press. A card sent to someone else keeps its token: the
    /// hub refuses it as minted for another person, and records who tried.
    async fn bind_to_card(&self, mut click: Click) -> Result<Option<Click>, CallbackError> {
        let entry: Option<SentCard> = match click.ack["context"].as_str().filter(|c| is_message_id(c)) {
            Some(c) => get_json(&*self.memory, &card_key(c))
                .await
                .map_err(|e| CallbackError::Unavailable(format!("whatsapp: cannot read sent cards: {e}")))?,
            None => None,
        };
        let claimed = Claims::parse(&click.token).ok().map(|c| c.id);
        let matches = entry.is_some_and(|e| Some(&e.approval) == claimed.as_ref());
        if !matches {
            tracing::warn!(user = %click.user, "whatsapp: a press not made on its own card");
            click.token = String::new();
        }
        Ok(Some(click))
    }
}

impl Channel for WhatsApp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binds_tokens(&self) -> bool {
        // Defence in depth: a card forwarded to another number is no ballot of theirs.
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

    /// Authenticates the webhook and returns its first press (deliveries carry one message).
    fn callback(&self, headers: &http::HeaderMap, body: &[u8], now_secs: u64) -> Result<Option<Click>, CallbackError> {
        verify::verify_signature(self.app_secret.expose(), headers, body)?;
        let inbound = verify::inbound(body, &self.phone_number_id)?;
        if let Ok(mut seen) = self.seen.lock() {
            for (who, ts) in &inbound.seen {
                let t = seen.entry(who.clone()).or_insert(0);
                *t = (*t).max((*ts).min(now_secs));
            }
        }
        for (to, code) in &inbound.failed {
            // Said after the send succeeded: the card never reached this approver.
            tracing::warn!(
                recipient = %to,
                code,
                hint = if *code == OUTSIDE_WINDOW { "outside the 24-hour window: configure [channels.whatsapp] template" } else { "" },
                "whatsapp: Meta could not deliver a message"
            );
        }
        let Some(p) = inbound.presses.into_iter().next() else {
            return Ok(None);
        };
        if now_secs.abs_diff(p.timestamp) > verify::MAX_AGE_SECS {
            return Err(CallbackError::Stale);
        }
        Ok(Some(Click {
            done: Default::default(),
            channel: NAME,
            ack: json!({"to": p.from, "message": p.message, "context": p.context}),
            user: p.from,
            token: p.token,
        }))
    }

    fn resolve<'a>(&'a self, click: Click, _now_secs: u64) -> BoxFuture<'a, Result<Option<Click>, CallbackError>> {
        Box::pin(self.bind_to_card(click))
    }

    fn subscribe(&self, query: &str) -> Option<String> {
        verify::subscribe(query, self.verify_token.expose())
    }
}
