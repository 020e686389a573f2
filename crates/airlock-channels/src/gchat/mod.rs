//! Google Chat: cards are `cardsV2` messages sent by a Chat app to each approver's direct
//! message space with it (found with `spaces:findDirectMessage`), authenticated as a service
//! account; presses come back as `CARD_CLICKED` interaction events, pulled from Cloud Pub/Sub
//! or POSTed to `/callbacks/gchat` with a bearer token Google signs; cards are updated with
//! `spaces.messages.patch`.
//!
//! - [`render`]: the card (the Adaptive Card's fields, HTML-escaped) with a `buttonList`.
//! - [`api`]: the service-account token (JWT bearer grant) and the REST calls.
//! - [`verify`]: the event's token against Google's keys, and what the event means.
//!
//! - [`pubsub`]: events pulled from a Cloud Pub/Sub subscription instead (no public URL).
//!
//! As with Teams, the keys may have to be fetched: [`Channel::callback`] checks the shape and
//! [`Channel::resolve`] authenticates.

pub mod api;
mod pubsub;
pub mod render;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::jwks::{KeyCache, KeySource, KeysError};
use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, ServiceAccount, enc, platform};
use verify::{Audience, is_name, is_user};

pub const DEFAULT_API_BASE: &str = "https://chat.googleapis.com/v1";
pub const DEFAULT_PUBSUB_BASE: &str = "https://pubsub.googleapis.com/v1";

pub struct GchatConfig {
    /// Default [`DEFAULT_API_BASE`]; tests point it at a fake.
    pub api_base: String,
    pub service_account: ServiceAccount,
    /// Default: the key file's `token_uri`, else [`api::DEFAULT_TOKEN_URL`].
    pub token_url: Option<String>,
    /// The app's "Authentication Audience" (its project number or its endpoint URL), when it
    /// takes events on `/callbacks/gchat`.
    pub audience: Option<Audience>,
    /// `projects/P/subscriptions/S`, when events are pulled from Cloud Pub/Sub.
    pub subscription: Option<String>,
    /// Default [`DEFAULT_PUBSUB_BASE`].
    pub pubsub_base: String,
    /// Default: [`Audience::default_jwks`].
    pub jwks_url: Option<String>,
    /// Minimum time between two key fetches caused by unknown kids.
    pub refetch_after: Duration,
}

pub struct Gchat {
    api: Api,
    base: String,
    pubsub: String,
    subscription: Option<String>,
    audience: Option<Audience>,
    keys: KeyCache,
}

impl std::fmt::Debug for Gchat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gchat")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Gchat {
    pub fn new(cfg: GchatConfig) -> Gchat {
        let token_url = cfg
            .token_url
            .or(cfg.service_account.token_uri.clone())
            .unwrap_or_else(|| api::DEFAULT_TOKEN_URL.to_string());
        let jwks = cfg.jwks_url.unwrap_or_else(|| {
            cfg.audience
                .as_ref()
                .map_or(verify::CHAT_JWKS, Audience::default_jwks)
                .to_string()
        });
        Gchat {
            api: api::client(&token_url, cfg.service_account, cfg.subscription.is_some()),
            base: cfg.api_base.trim_end_matches('/').to_string(),
            pubsub: cfg.pubsub_base.trim_end_matches('/').to_string(),
            subscription: cfg.subscription,
            audience: cfg.audience,
            keys: KeyCache::new(KeySource::Jwks(jwks), cfg.refetch_after),
        }
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_user(to) {
            return Err(platform("a Google Chat person is users/<numeric id>"));
        }
        let url = format!("{}/spaces:findDirectMessage?name={}", self.base, enc(to));
        let dm = self
            .api
            .call(Method::GET, "find direct message", &url, None)
            .await
            .map_err(|e| match e {
                ChannelError::Platform { detail, .. } if detail.ends_with("HTTP 404") => platform(format!(
                    "{to} has no direct message with the airlock Chat app: a card can reach them only after \
                     they add the app (Chat → New chat → Apps)"
                )),
                e => e,
            })?;
        let Some(space) = dm["name"].as_str().filter(|s| is_name(s, "spaces/")) else {
            return Err(platform("find direct message: no space name in the answer"));
        };
        let body = render::message(card, &Status::Pending { approved_by: vec![] }, Some(buttons));
        let sent = self
            .api
            .call(
                Method::POST,
                "create message",
                &format!("{}/{space}/messages", self.base),
                Some(&body),
            )
            .await?;
        match sent["name"]
            .as_str()
            .filter(|m| is_name(m, &format!("{space}/messages/")))
        {
            Some(m) => Ok(MessageRef(m.to_string())),
            None => Err(platform("create message: no message name in the answer")),
        }
    }

    async fn update_card(
        &self,
        card: &Card,
        status: &Status,
        buttons: Option<&Buttons>,
        msg: &MessageRef,
    ) -> Result<(), ChannelError> {
        if !is_name(&msg.0, "spaces/") || !msg.0.contains("/messages/") {
            return Err(platform("not a Google Chat message name"));
        }
        let body = json!({"cardsV2": [render::card(card, status, buttons)]});
        let url = format!("{}/{}?updateMask=cardsV2", self.base, msg.0);
        self.api
            .call(Method::PATCH, "patch message", &url, Some(&body))
            .await
            .map(drop)
    }

    async fn authenticate(&self, click: Click, now_secs: u64) -> Result<Option<Click>, CallbackError> {
        let Some(audience) = &self.audience else {
            return Err(CallbackError::NotSupported);
        };
        let (headers, body) = crate::jwks::unstash(&click)?;
        let token = crate::teams::verify::bearer(&headers)?;
        let keys = match self.keys.keys_for(token).await {
            Ok(k) => k,
            Err(KeysError::Token(_)) => return Err(CallbackError::BadSignature),
            Err(KeysError::Unavailable(e)) => return Err(CallbackError::Unavailable(e)),
        };
        let event = verify::verify(&headers, body.as_bytes(), &keys, audience, now_secs)?;
        Ok(verify::click(&event))
    }
}

impl Channel for Gchat {
    fn name(&self) -> &'static str {
        "gchat"
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

    /// An HTTP event is answered in its synchronous response ([`Channel::callback_answer`]); a
    /// pulled one with a message in the space.
    fn acknowledge<'a>(&'a self, click: &'a Click, reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            if click.ack["pubsub"] != true {
                return Ok(());
            }
            let Some(space) = click.ack["space"].as_str().filter(|s| is_name(s, "spaces/")) else {
                return Err(platform("the click carries no space"));
            };
            let mut body = render::answer(reply);
            body.as_object_mut().map(|m| m.remove("actionResponse"));
            let url = format!("{}/{space}/messages", self.base);
            self.api.call(Method::POST, "reply", &url, Some(&body)).await.map(drop)
        })
    }

    /// Only the shape: a bearer token and a JSON event. [`Channel::resolve`] authenticates.
    fn callback(&self, headers: &http::HeaderMap, body: &[u8], _now_secs: u64) -> Result<Option<Click>, CallbackError> {
        if self.audience.is_none() {
            return Err(CallbackError::NotSupported);
        }
        crate::jwks::stash("gchat", crate::teams::verify::bearer(headers)?, body).map(Some)
    }

    fn resolve<'a>(&'a self, click: Click, now_secs: u64) -> BoxFuture<'a, Result<Option<Click>, CallbackError>> {
        Box::pin(self.authenticate(click, now_secs))
    }

    fn callback_answer(&self, _body: &[u8], reply: Option<&Reply>) -> Option<Value> {
        reply.map(render::answer)
    }

    /// Pulls the Pub/Sub subscription, when one is configured (one replica at a time).
    fn start(self: Arc<Self>, clicks: tokio::sync::mpsc::Sender<Click>, shutdown: tokio::sync::watch::Receiver<bool>) {
        if let Some(sub) = self.subscription.clone() {
            tokio::spawn(self.pull(sub, clicks, shutdown));
        }
    }
}
