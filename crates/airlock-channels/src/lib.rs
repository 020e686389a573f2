//! Approval channels. The gateway builds a [`Card`] from its own parse of the held request
//! (never from anything the agent labels as "card"); each platform module renders it in that
//! platform's markup with every agent-controlled string escaped, sends and updates it, and
//! authenticates the clicks that come back (invariants 7 and 8).
//!
//! A channel never decides: it turns a platform click into a [`Click`] (platform user id +
//! signed button token) and the approvals hub maps the user to a person, checks the token
//! and applies the vote through the core state machine.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

pub mod adaptive;
pub mod ballot;
pub mod card;
mod client;
pub mod discord;
pub mod email;
pub mod gchat;
pub mod jwks;
pub mod jwt;
pub mod matrix;
pub mod mattermost;
pub mod memory;
pub mod ntfy;
mod oauth;
pub mod render;
pub mod signal;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod text;
pub mod token;
pub mod webex;
pub mod webhook;
pub mod whatsapp;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The held request exactly as the gateway received it (placeholders, never real secrets).
#[derive(Debug, Clone)]
pub struct HeldRequest {
    pub agent: String,
    pub method: String,
    /// "https" or "http".
    pub scheme: String,
    /// Host as the gateway resolved the destination (lower-case, no port).
    pub host: String,
    pub port: u16,
    /// Path and query exactly as sent.
    pub target: String,
    /// Headers in received order (Proxy-Authorization already removed).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: bytes::Bytes,
}

/// One matching `approve` rule, as shown on the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLine {
    pub name: String,
    pub reason: String,
    pub approvers: Vec<String>,
    pub quorum: u32,
}

/// What a body looked like to the gateway's parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    Empty,
    Json,
    Form,
    Graphql,
    Sql,
    Text,
    Binary,
}

/// The body as shown: the complete pretty-printed text of the decoded body (renderers
/// truncate, the dashboard shows it whole), invalid UTF-8 bytes marked `<0xNN>`. Binary
/// bodies are shown as a hex preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyView {
    pub content_type: Option<String>,
    pub kind: BodyKind,
    /// Bytes on the wire.
    pub size: usize,
    pub text: String,
    /// Set when the body was sent with a `Content-Encoding` that the card undid: `text` is
    /// read from the decoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded: Option<Decoding>,
}

/// How a body sent compressed was decoded for the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decoding {
    /// The codings undone, as the headers name them ("gzip", "deflate, br").
    pub encoding: String,
    /// Bytes after decoding.
    pub size: usize,
}

/// Everything a card shows, computed by the gateway alone. All strings except `id`,
/// `digest` and the rule lines come from the agent and must be treated as hostile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub id: String,
    pub agent: String,
    pub rules: Vec<RuleLine>,
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Path as sent (percent-encoding kept).
    pub path: String,
    /// Query parameters, decoded.
    pub query: Vec<(String, String)>,
    /// Selected headers; credentials and cookies replaced by "[redacted]".
    pub headers: Vec<(String, String)>,
    pub body: BodyView,
    /// A readable title for common actions ("Send email", "GitHub: merge pull request", "SQL").
    pub summary_title: Option<String>,
    /// Label → value lines for common actions (To, Cc, Subject; Repository, Action; Statement).
    pub summary: Vec<(String, String)>,
    /// Hex SHA-256 over method, URL, headers and body: what is approved is what is forwarded.
    pub digest: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// Offered "approve for N seconds" (scoped to agent + rule + host), if a rule allows it.
    pub grant_secs: Option<u64>,
}

impl Card {
    /// The first 12 hex digits of the digest, printed on every card.
    pub fn short_digest(&self) -> &str {
        self.digest.get(..12).unwrap_or(&self.digest)
    }

    /// Distinct people needed: the largest quorum among the rules (for "1 of 2 approvals").
    pub fn approvals_needed(&self) -> u32 {
        self.rules.iter().map(|r| r.quorum.max(1)).max().unwrap_or(1)
    }
}

/// Where an approval stands; cards are re-rendered from this when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    Pending {
        approved_by: Vec<String>,
    },
    Approved {
        by: Vec<String>,
        at_ms: u64,
        grant_secs: Option<u64>,
    },
    Denied {
        by: String,
        at_ms: u64,
    },
    Expired {
        at_ms: u64,
    },
    /// The gateway holding the request restarted: never forwarded.
    Abandoned {
        at_ms: u64,
    },
    /// The agent disconnected before a decision.
    Withdrawn {
        at_ms: u64,
    },
    /// Refused by the gateway itself: the decision could not be recorded, or no card could
    /// be delivered (fail closed).
    Failed {
        reason: String,
        at_ms: u64,
    },
}

impl Status {
    pub fn is_open(&self) -> bool {
        matches!(self, Status::Pending { .. })
    }

    /// The state's name, as stored and as sent in events: "pending", "approved", …
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending { .. } => "pending",
            Status::Approved { .. } => "approved",
            Status::Denied { .. } => "denied",
            Status::Expired { .. } => "expired",
            Status::Abandoned { .. } => "abandoned",
            Status::Withdrawn { .. } => "withdrawn",
            Status::Failed { .. } => "failed",
        }
    }
}

/// Signed tokens for the card's buttons (see [`token`]). Renderers put these, and only these,
/// in button payloads; they never derive a button from card content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buttons {
    pub approve: String,
    pub deny: String,
    /// Present when a rule offers a grant.
    pub grant: Option<String>,
}

/// A sent card, enough to update it later (persisted, so a restarted gateway can still
/// mark it abandoned): e.g. Slack "channel/ts", Telegram "chat_id/message_id".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef(pub String);

/// An approver as configured in `[people.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    pub name: String,
    pub roles: Vec<String>,
    /// Channel name ("slack", "telegram", "webhook", "email") → the person's id there.
    pub ids: BTreeMap<String, String>,
}

/// An authenticated click from a platform: who (platform user id) pressed which button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub channel: &'static str,
    /// The clicker's platform identity, as the platform asserted it in an authenticated callback.
    pub user: String,
    /// The button's signed token.
    pub token: String,
    /// Platform data needed to answer the clicker (Telegram callback_query id, Slack
    /// response_url / channel, …).
    pub ack: serde_json::Value,
    /// Dropped by the hub once the click is applied (see [`Done`]).
    pub done: Done,
}

/// A drop guard a click carries: a pull-based channel that must not confirm a click to its
/// platform before the hub applied it (Telegram forgets an update once confirmed) waits until
/// every click it handed over is dropped. A reader that dies before that leaves the click
/// unconfirmed, and the platform delivers it to the next reader.
#[derive(Debug, Clone, Default)]
pub struct Done {
    /// Never read: it is held only to be dropped.
    _held: Option<mpsc::Sender<()>>,
}

impl Done {
    /// A guard and what resolves once it and every clone of it are dropped.
    pub fn pair() -> (Done, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        (Done { _held: Some(tx) }, rx)
    }
}

/// Guards carry nothing to compare.
impl PartialEq for Done {
    fn eq(&self, _: &Done) -> bool {
        true
    }
}
impl Eq for Done {}

/// What the hub tells the clicker (ephemeral where the platform supports it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// True when the vote counted.
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{channel}: request failed: {detail}")]
    Transport { channel: &'static str, detail: String },
    #[error("{channel}: the platform refused: {detail}")]
    Platform { channel: &'static str, detail: String },
    #[error("{channel}: rate limited, retry after {retry_after_secs}s")]
    RateLimited {
        channel: &'static str,
        retry_after_secs: u64,
    },
}

/// Why an inbound HTTP callback was rejected. Callers answer 401 for the auth variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("this channel does not take HTTP callbacks")]
    NotSupported,
    #[error("missing or malformed header {0}")]
    MissingHeader(&'static str),
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp outside the replay window")]
    Stale,
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The platform's API, asked to complete an authenticated callback, could not answer
    /// (callers answer 502: the request may be genuine).
    #[error("{0}")]
    Unavailable(String),
}

/// One approval platform. Implementations hold their credentials in redacting types and
/// never log them; every string they send that came from a card goes through their escaper.
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// The person's address on this platform (from `[people.NAME]`), if they have one.
    fn address(&self, person: &Person) -> Option<String> {
        person.ids.get(self.name()).cloned()
    }

    /// True when a click's `user` is only as good as the token it came with (an ntfy action
    /// anyone reading the topic can press): the hub then mints each recipient's buttons with
    /// [`token::sign_for`], bound to that person on this channel, and counts a click only when
    /// its token was minted for the person its `user` names.
    fn binds_tokens(&self) -> bool {
        false
    }

    /// Sends a new card to `to` (a platform user id); returns where it landed.
    fn send<'a>(
        &'a self,
        card: &'a Card,
        buttons: &'a Buttons,
        to: &'a str,
    ) -> BoxFuture<'a, Result<MessageRef, ChannelError>>;

    /// Re-renders a sent card for a new status; a closed status removes the buttons. An
    /// open status keeps the card's `buttons` (the hub passes them while it holds the
    /// approval; `None` only after a restart, when every status it renders is closed).
    fn update<'a>(
        &'a self,
        card: &'a Card,
        status: &'a Status,
        buttons: Option<&'a Buttons>,
        msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// Answers the clicker after the hub handled their click (ephemeral where possible).
    fn acknowledge<'a>(&'a self, click: &'a Click, reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// Authenticates an HTTP callback posted to `/callbacks/<name>` on the control listener
    /// and extracts the click; `Ok(None)` for a valid update that is not a click.
    fn callback(
        &self,
        _headers: &http::HeaderMap,
        _body: &[u8],
        _now_secs: u64,
    ) -> Result<Option<Click>, CallbackError> {
        Err(CallbackError::NotSupported)
    }

    /// The platform identity a vote is counted for: by default the `user` the click carries.
    /// A channel that must confirm it first (Mattermost: the user looked up through the API,
    /// active and not a bot) answers with the identity `[people.NAME]` names, or an error
    /// (the click then counts for nothing).
    fn identify<'a>(&'a self, click: &'a Click) -> BoxFuture<'a, Result<String, ChannelError>> {
        Box::pin(async move { Ok(click.user.clone()) })
    }

    /// The JSON body `/callbacks/<name>` answers a click with: by default the [`Reply`].
    fn callback_body(&self, reply: &Reply) -> serde_json::Value {
        serde_json::to_value(reply).unwrap_or_default()
    }

    /// The HTTP status `/callbacks/<name>` answers a refused click with (the body is the
    /// [`Reply`] either way): 200 by default, since most platforms show nothing of it; ntfy
    /// keeps a notification and shows an error only on a non-2xx answer.
    fn refusal_status(&self) -> u16 {
        200
    }

    /// Completes a click from an authenticated callback that only names what happened
    /// (Webex: the action is fetched from the platform's API, which says who pressed what).
    /// `Ok(None)`: not a click of ours after all. Default: the click as it is.
    fn resolve<'a>(&'a self, click: Click, _now_secs: u64) -> BoxFuture<'a, Result<Option<Click>, CallbackError>> {
        Box::pin(async move { Ok(Some(click)) })
    }

    /// The body of the HTTP answer to an authenticated callback, for platforms that prescribe
    /// one (Discord: PONG to a PING, a deferred update to a click). `reply` is the hub's answer
    /// when the callback was a click. `None`: the hub's reply as JSON, or an empty 200.
    fn callback_answer(&self, _body: &[u8], _reply: Option<&Reply>) -> Option<serde_json::Value> {
        None
    }

    /// A platform's subscription handshake, `GET /callbacks/<name>?…` (WhatsApp's
    /// `hub.mode=subscribe`): the text to answer with 200 when the query proves the caller
    /// knows the channel's verify token; `None` (the default) answers 403.
    fn subscribe(&self, _query: &str) -> Option<String> {
        None
    }

    /// Pull-based channels (Slack Socket Mode, Telegram getUpdates) start their reader here
    /// and push authenticated clicks into `clicks` until `shutdown` turns true.
    fn start(self: Arc<Self>, _clicks: mpsc::Sender<Click>, _shutdown: watch::Receiver<bool>) {}
}
