//! Signal, through a signal-cli daemon in JSON-RPC HTTP mode next to airlock: each approver
//! gets the card as a text message from the bot's number, with the instruction to reply
//! `approve CODE` / `deny CODE`. Replies arrive on the daemon's event stream (server-sent
//! events, read on one replica at a time); the voter is the sender's number as signal-cli
//! reports it (`envelope.sourceNumber`), matched to `[people.NAME] signal`. The code maps, in
//! the store, to the card's tokens, minted for the one person the card was sent to. Closing
//! sends a short message.
//!
//! - [`render`]: the text card and the replies.
//! - [`api`]: JSON-RPC `send`.
//! - [`verify`]: SSE framing and an event → vote (pure).

mod api;
pub mod render;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::ballot::{self, Ballot};
use crate::memory::{Memory, get_json, put_json};
use crate::{BoxFuture, Buttons, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, platform, transport};
use verify::is_number;

pub(crate) const NAME: &str = "signal";
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

pub struct SignalConfig {
    /// The daemon's HTTP base URL (`signal-cli daemon --http 127.0.0.1:8080`).
    pub url: String,
    /// The bot's number, for a daemon serving several accounts.
    pub account: Option<String>,
    /// Cards' codes (shared by replicas).
    pub memory: Arc<dyn Memory>,
}

pub struct Signal {
    api: Api,
    memory: Arc<dyn Memory>,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("url", &self.api.base)
            .finish_non_exhaustive()
    }
}

fn code_key(code: &str) -> String {
    format!("{NAME}/code/{code}")
}

fn mem_err(e: String) -> ChannelError {
    platform(format!("the store: {e}"))
}

/// "number timestamp code".
fn parse_ref(msg: &MessageRef) -> Result<(&str, &str), ChannelError> {
    let mut it = msg.0.split(' ');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(n), Some(_), Some(c), None) if is_number(n) && ballot::is_code(c) => Ok((n, c)),
        _ => Err(platform("not a Signal card reference (expected NUMBER TIMESTAMP CODE)")),
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl Signal {
    pub fn new(cfg: SignalConfig) -> Signal {
        Signal {
            api: Api::new(&cfg.url, cfg.account),
            memory: cfg.memory,
        }
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_number(to) {
            return Err(platform("a Signal id is the number in E.164 form, e.g. +15551234567"));
        }
        let code = ballot::new_code();
        // Stored first: a reply can come the moment the message lands.
        put_json(&*self.memory, &code_key(&code), &Ballot::new(to, buttons))
            .await
            .map_err(mem_err)?;
        let text = render::card(card, &Status::Pending { approved_by: vec![] }, &code);
        match self.api.send(to, &text).await {
            Ok(ts) => Ok(MessageRef(format!("{to} {ts} {code}"))),
            Err(e) => {
                let _ = self.memory.remove(&code_key(&code)).await;
                Err(e)
            }
        }
    }

    async fn update_card(&self, card: &Card, status: &Status, msg: &MessageRef) -> Result<(), ChannelError> {
        if status.is_open() {
            return Ok(());
        }
        let (to, code) = parse_ref(msg)?;
        self.memory.remove(&code_key(code)).await.map_err(mem_err)?;
        self.api.send(to, &render::closing(card, status, code)).await.map(drop)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        let to = click.ack["to"]
            .as_str()
            .filter(|n| is_number(n))
            .ok_or_else(|| platform("the vote carries no sender"))?;
        self.api.send(to, &render::answer(reply)).await.map(drop)
    }

    /// The click a reply makes: its code's token for the decision typed; a code that is no
    /// open card's keeps no token (the hub refuses and records it).
    async fn click_for(&self, vote: verify::Vote) -> Result<Click, ChannelError> {
        let ballot: Option<Ballot> = get_json(&*self.memory, &code_key(&vote.code)).await.map_err(mem_err)?;
        Ok(Click {
            done: Default::default(),
            channel: NAME,
            token: ballot.map(|b| b.token(vote.decision)).unwrap_or_default(),
            ack: json!({"to": vote.from, "timestamp": vote.timestamp}),
            user: vote.from,
        })
    }

    /// Reads the event stream until shutdown, reconnecting with backoff.
    async fn read(self: Arc<Self>, clicks: mpsc::Sender<Click>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let connected = tokio::select! {
                r = self.api.stream.get(format!("{}/api/v1/events", self.api.base))
                    .header(http::header::ACCEPT, "text/event-stream").send() => r,
                _ = stopped(&mut shutdown) => return,
            };
            let error = match connected {
                Ok(resp) if resp.status().is_success() => {
                    backoff = BACKOFF_MIN;
                    match self.follow(resp, &clicks, &mut shutdown).await {
                        Some(e) => e,
                        None => return,
                    }
                }
                Ok(resp) => platform(format!("events: HTTP {}", resp.status().as_u16())),
                Err(e) => transport(e),
            };
            tracing::warn!(error = %error, retry_in = ?backoff, "signal: event stream lost");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(&mut shutdown) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Follows one connection; `None` when the reader is to stop, else why the stream ended.
    async fn follow(
        &self,
        mut resp: reqwest::Response,
        clicks: &mpsc::Sender<Click>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<ChannelError> {
        let mut sse = verify::Sse::default();
        loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = stopped(shutdown) => return None,
            };
            let bytes = match chunk {
                Ok(Some(b)) => b,
                Ok(None) => return Some(platform("events: the daemon closed the stream")),
                Err(e) => return Some(transport(e)),
            };
            for data in sse.feed(&bytes) {
                let Some(vote) = verify::vote(&data, self.api.account()) else {
                    continue;
                };
                match self.click_for(vote).await {
                    Ok(click) => {
                        if clicks.send(click).await.is_err() {
                            return None;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "signal: a vote could not be read"),
                }
            }
        }
    }
}

impl Channel for Signal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binds_tokens(&self) -> bool {
        // A code is a handle: it votes only as the person it was sent to.
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

    fn start(self: Arc<Self>, clicks: mpsc::Sender<Click>, shutdown: watch::Receiver<bool>) {
        tokio::spawn(self.read(clicks, shutdown));
    }
}
