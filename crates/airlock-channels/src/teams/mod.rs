//! Microsoft Teams through the Bot Framework: cards are Adaptive Card messages sent to each
//! approver's personal conversation with the bot (`POST {serviceUrl}/v3/conversations/{id}/activities`
//! with an Entra client-credentials token); presses come back as activities on `/callbacks/teams`.
//!
//! - [`render`]: the shared Adaptive Card ([`crate::adaptive`]) with `Action.Execute` buttons.
//! - [`api`]: the Entra token (cached) and the Connector calls.
//! - [`verify`]: the activity's JWT against the Bot Framework's keys, and what it means.
//!
//! A bot cannot open a conversation with someone who never talked to it: the conversation is
//! learned when the approver installs the app or writes to the bot, and kept in the store
//! ([`Conversations`]). Until then their cards cannot be delivered, and the error says so.
//!
//! Authentication needs the Bot Framework's signing keys, which may have to be fetched: so
//! [`Channel::callback`] only checks that a bearer token and a JSON body are there, and
//! [`Channel::resolve`] verifies the token (fetching keys) before the activity means anything.

mod api;
pub mod render;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_vault::SecretBytes;
use http::Method;
use serde_json::{Value, json};

use crate::jwks::{KeyCache, KeySource, KeysError};
use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, enc, platform};

use verify::{Inbound, is_id, is_service_url};

pub const DEFAULT_OPENID_URL: &str = "https://login.botframework.com/v1/.well-known/openidconfiguration";
/// The token endpoint of multi-tenant bots; single-tenant ones use their tenant's.
pub fn default_token_url(tenant: Option<&str>) -> String {
    format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        tenant.unwrap_or("botframework.com")
    )
}
/// Cards remembered for answering presses with an updated card (each a few KB: rendered, cut).
const SENT_MAX: usize = 2_000;

/// Where each approver's personal conversation with the bot is: kept in the store by the
/// gateway, in memory by tests. `reference` is a small JSON document of ours.
pub trait Conversations: Send + Sync + 'static {
    fn get<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Option<String>, String>>;
    fn put<'a>(&'a self, user: &'a str, reference: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// [`Conversations`] in memory.
#[derive(Default)]
pub struct MemoryConversations(Mutex<HashMap<String, String>>);

impl Conversations for MemoryConversations {
    fn get<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        let v = self.0.lock().map(|m| m.get(user).cloned()).unwrap_or_default();
        Box::pin(async move { Ok(v) })
    }
    fn put<'a>(&'a self, user: &'a str, reference: &'a str) -> BoxFuture<'a, Result<(), String>> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(user.to_string(), reference.to_string());
        }
        Box::pin(async { Ok(()) })
    }
}

pub struct TeamsConfig {
    /// The bot's Microsoft App ID: the audience of the Bot Framework's tokens.
    pub app_id: String,
    /// The app's client secret.
    pub app_password: SecretBytes,
    /// Single-tenant bots: only activities from this tenant count.
    pub tenant_id: Option<String>,
    /// Default [`default_token_url`]; tests point it at a fake.
    pub token_url: String,
    /// Default [`DEFAULT_OPENID_URL`].
    pub openid_url: String,
    /// Minimum time between two key fetches caused by unknown kids.
    pub refetch_after: Duration,
    pub conversations: Arc<dyn Conversations>,
}

pub struct Teams {
    api: Api,
    app_id: String,
    tenant: Option<String>,
    keys: KeyCache,
    conversations: Arc<dyn Conversations>,
    /// "conversation activity" → the card sent there as last rendered, without buttons, to
    /// answer a press with.
    sent: Mutex<HashMap<String, Value>>,
}

impl std::fmt::Debug for Teams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Teams")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// "serviceUrl conversation activity".
fn parse_ref(msg: &MessageRef) -> Result<(&str, &str, &str), ChannelError> {
    let mut p = msg.0.split(' ');
    match (p.next(), p.next(), p.next(), p.next()) {
        (Some(s), Some(c), Some(a), None) if is_service_url(s) && is_id(c) && is_id(a) => Ok((s, c, a)),
        _ => Err(platform(
            "not a Teams message reference (expected SERVICE CONVERSATION ACTIVITY)",
        )),
    }
}

fn activities_url(service: &str, conversation: &str) -> String {
    format!(
        "{}/v3/conversations/{}/activities",
        service.trim_end_matches('/'),
        enc(conversation)
    )
}

impl Teams {
    pub fn new(cfg: TeamsConfig) -> Teams {
        Teams {
            api: api::connector(&cfg.token_url, &cfg.app_id, cfg.app_password),
            app_id: cfg.app_id,
            tenant: cfg.tenant_id,
            keys: KeyCache::new(KeySource::OpenId(cfg.openid_url), cfg.refetch_after),
            conversations: cfg.conversations,
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// The approvers (Entra object ids) airlock has no conversation with yet: they must
    /// install the app or write to the bot before a card can reach them.
    pub async fn unreachable(&self, users: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for u in users {
            if !matches!(self.conversations.get(u).await, Ok(Some(_))) {
                out.push(u.clone());
            }
        }
        out
    }

    fn remember(&self, conv: &str, id: &str, card: Value) {
        if let Ok(mut m) = self.sent.lock() {
            if m.len() >= SENT_MAX {
                m.clear();
            }
            m.insert(format!("{conv} {id}"), card);
        }
    }

    async fn conversation(&self, to: &str) -> Result<(String, String), ChannelError> {
        let stored = self
            .conversations
            .get(to)
            .await
            .map_err(|e| platform(format!("cannot read the conversation of Teams user {to}: {e}")))?;
        let Some(raw) = stored else {
            return Err(platform(format!(
                "Teams user {to} has not written to the airlock bot yet: a card can reach them only \
                 after they install the app or send the bot a message"
            )));
        };
        let v: Value = serde_json::from_str(&raw).unwrap_or_default();
        match (v["service"].as_str(), v["conversation"].as_str()) {
            (Some(s), Some(c)) if is_service_url(s) && is_id(c) => Ok((s.to_string(), c.to_string())),
            _ => Err(platform(format!(
                "the stored conversation of Teams user {to} is not valid"
            ))),
        }
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        let (service, conv) = self.conversation(to).await?;
        let body = render::activity(render::card(
            card,
            &Status::Pending { approved_by: vec![] },
            Some(buttons),
        ));
        let sent = self
            .api
            .call(
                Method::POST,
                "send activity",
                &activities_url(&service, &conv),
                Some(&body),
            )
            .await?;
        let Some(id) = sent["id"].as_str().filter(|a| is_id(a)) else {
            return Err(platform("send activity: no id in the answer"));
        };
        self.remember(
            &conv,
            id,
            render::card(card, &Status::Pending { approved_by: vec![] }, None),
        );
        Ok(MessageRef(format!("{service} {conv} {id}")))
    }

    async fn update_card(
        &self,
        card: &Card,
        status: &Status,
        buttons: Option<&Buttons>,
        msg: &MessageRef,
    ) -> Result<(), ChannelError> {
        let (service, conv, id) = parse_ref(msg)?;
        self.remember(conv, id, render::card(card, status, None));
        let mut body = render::activity(render::card(card, status, buttons));
        body["id"] = json!(id);
        let url = format!("{}/{}", activities_url(service, conv), enc(id));
        self.api
            .call(Method::PUT, "update activity", &url, Some(&body))
            .await
            .map(drop)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        if click.ack["invoke"] == true {
            // Answered in the invoke response.
            return Ok(());
        }
        let service = click.ack["service"].as_str().filter(|s| is_service_url(s));
        let conv = click.ack["conversation"].as_str().filter(|c| is_id(c));
        let (Some(service), Some(conv)) = (service, conv) else {
            return Err(platform("the click carries no conversation"));
        };
        let body = render::text(&reply.text, click.ack["activity"].as_str());
        self.api
            .call(Method::POST, "reply", &activities_url(service, conv), Some(&body))
            .await
            .map(drop)
    }

    /// Remembers where `user`'s cards go; greets them the first time.
    async fn learn(&self, user: &str, reference: &Value) {
        let raw = reference.to_string();
        let known = self.conversations.get(user).await.ok().flatten();
        if known.as_deref() == Some(raw.as_str()) {
            return;
        }
        if let Err(e) = self.conversations.put(user, &raw).await {
            tracing::warn!(channel = "teams", user, error = %e, "could not store a Teams conversation");
            return;
        }
        tracing::info!(
            channel = "teams",
            user,
            "learned a Teams conversation: approval cards can reach this user now"
        );
        let (Some(service), Some(conv)) = (reference["service"].as_str(), reference["conversation"].as_str()) else {
            return;
        };
        let hello = render::text("airlock will send approval requests for you here.", None);
        if let Err(e) = self
            .api
            .call(Method::POST, "greeting", &activities_url(service, conv), Some(&hello))
            .await
        {
            tracing::warn!(channel = "teams", error = %e, "could not greet a new Teams conversation");
        }
    }

    async fn authenticate(&self, click: Click, now_secs: u64) -> Result<Option<Click>, CallbackError> {
        let (headers, body) = crate::jwks::unstash(&click)?;
        let token = verify::bearer(&headers)?;
        let keys = match self.keys.keys_for(token).await {
            Ok(k) => k,
            Err(KeysError::Token(_)) => return Err(CallbackError::BadSignature),
            Err(KeysError::Unavailable(e)) => return Err(CallbackError::Unavailable(e)),
        };
        let activity = verify::verify(&headers, body.as_bytes(), &keys, &self.app_id, now_secs)?;
        match verify::inbound(&activity, self.tenant.as_deref())? {
            Inbound::Click { user, token, ack } => Ok(Some(Click {
                channel: "teams",
                user,
                token,
                ack,
                done: Default::default(),
            })),
            Inbound::Reference { user, reference } => {
                self.learn(&user, &reference).await;
                Ok(None)
            }
            Inbound::Other => Ok(None),
        }
    }
}

impl Channel for Teams {
    fn name(&self) -> &'static str {
        "teams"
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

    /// Only the shape: a bearer token and a JSON activity. [`Channel::resolve`] authenticates.
    fn callback(&self, headers: &http::HeaderMap, body: &[u8], _now_secs: u64) -> Result<Option<Click>, CallbackError> {
        crate::jwks::stash("teams", verify::bearer(headers)?, body).map(Some)
    }

    fn resolve<'a>(&'a self, click: Click, now_secs: u64) -> BoxFuture<'a, Result<Option<Click>, CallbackError>> {
        Box::pin(self.authenticate(click, now_secs))
    }

    /// An `Action.Execute` press is answered in the invoke response: the card without buttons
    /// and with the outcome when the vote counted, a short message otherwise.
    fn callback_answer(&self, body: &[u8], reply: Option<&Reply>) -> Option<Value> {
        let reply = reply?;
        let a: Value = serde_json::from_slice(body).ok()?;
        if a["type"] != "invoke" {
            return None;
        }
        let key = format!(
            "{} {}",
            a["conversation"]["id"].as_str()?,
            a["replyToId"].as_str().unwrap_or("")
        );
        let card = self.sent.lock().ok().and_then(|m| m.get(&key).cloned());
        Some(match (reply.ok, card) {
            (true, Some(card)) => render::invoke_card(card, reply),
            _ => render::invoke_message(reply),
        })
    }
}
