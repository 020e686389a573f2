//! Matrix, over the client-server API (no SDK): each approver gets the card in a direct room
//! with the bot (created with `is_direct` and remembered), as an `m.room.message` with a
//! sanitized HTML body; the bot seeds ✅ / ❌ reactions. A vote is the approver's own reaction
//! on the card, or a message `approve CODE` / `deny CODE` with the card's code. Events are read
//! by `/sync` long polling (outbound only), on one replica at a time, and the `since` token is
//! kept in the store once the votes it covers are applied: a restart or failover resumes
//! there, losing none and replaying none. The voter is the event's `sender`, as the
//! homeserver asserts it. Unencrypted rooms only. A card is edited (`m.replace`) as its
//! approval changes, and its reactions removed when it closes.
//!
//! - [`render`]: the card, edits, reactions, answers.
//! - [`api`]: client-server calls with the access token.
//! - [`verify`]: votes in a sync response (pure).
//! - `sync`: the long-polling reader.

mod api;
pub mod render;
mod sync;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use airlock_vault::SecretBytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::ballot::{self, Ballot};
use crate::memory::{Memory, get_json, put_json};
use crate::{BoxFuture, Buttons, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, platform, seg, txn};
use verify::{is_event_id, is_room_id, is_user_id};

pub(crate) const NAME: &str = "matrix";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct MatrixConfig {
    /// The homeserver's client-server base URL, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    /// The bot account's access token.
    pub access_token: SecretBytes,
    /// Direct rooms, cards' codes, the sync position (shared by replicas).
    pub memory: Arc<dyn Memory>,
    /// How long one `/sync` waits for events (30 s in production).
    pub poll_timeout: Duration,
}

pub struct Matrix {
    api: Api,
    memory: Arc<dyn Memory>,
    bot: tokio::sync::OnceCell<String>,
    poll_timeout: Duration,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matrix").finish_non_exhaustive()
    }
}

/// A sent card, under its code.
#[derive(Debug, Serialize, Deserialize)]
struct Posted {
    room: String,
    event: String,
    /// The bot's own ✅ / ❌, removed when the card closes.
    seeds: Vec<String>,
    ballot: Ballot,
}

fn code_key(code: &str) -> String {
    format!("{NAME}/code/{code}")
}
fn event_key(event: &str) -> String {
    format!("{NAME}/event/{event}")
}
fn dm_key(user: &str) -> String {
    format!("{NAME}/dm/{user}")
}

/// "room event code".
fn parse_ref(msg: &MessageRef) -> Result<(&str, &str, &str), ChannelError> {
    let mut it = msg.0.split(' ');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(r), Some(e), Some(c), None) if is_room_id(r) && is_event_id(e) && ballot::is_code(c) => Ok((r, e, c)),
        _ => Err(platform("not a Matrix card reference (expected ROOM EVENT CODE)")),
    }
}

fn mem_err(e: String) -> ChannelError {
    platform(format!("the store: {e}"))
}

impl Matrix {
    pub fn new(cfg: MatrixConfig) -> Matrix {
        Matrix {
            api: Api::new(&cfg.homeserver, cfg.access_token),
            memory: cfg.memory,
            bot: tokio::sync::OnceCell::new(),
            poll_timeout: cfg.poll_timeout,
        }
    }

    async fn call(&self, method: Method, what: &str, path: &str, body: Option<&Value>) -> Result<Value, ChannelError> {
        self.api.call(method, what, path, body, CALL_TIMEOUT).await
    }

    /// The bot's own user id (`/account/whoami`).
    pub(crate) async fn bot(&self) -> Result<&str, ChannelError> {
        self.bot
            .get_or_try_init(|| async {
                let v = self.call(Method::GET, "whoami", "/account/whoami", None).await?;
                v["user_id"]
                    .as_str()
                    .filter(|u| is_user_id(u))
                    .map(str::to_string)
                    .ok_or_else(|| platform("whoami: no user_id"))
            })
            .await
            .map(String::as_str)
    }

    /// The direct room with `user`: remembered, or created (private, unencrypted, `is_direct`).
    async fn dm(&self, user: &str) -> Result<String, ChannelError> {
        if let Some(room) = get_json::<String>(&*self.memory, &dm_key(user))
            .await
            .map_err(mem_err)?
        {
            return Ok(room);
        }
        let body = json!({
            "preset": "private_chat",
            "is_direct": true,
            "invite": [user],
            "name": "airlock approvals",
            "topic": "Approval requests from airlock. Unencrypted: airlock reads votes from this room.",
        });
        let v = self
            .call(Method::POST, "createRoom", "/createRoom", Some(&body))
            .await?;
        let room = v["room_id"]
            .as_str()
            .filter(|r| is_room_id(r))
            .ok_or_else(|| platform("createRoom: no room_id"))?
            .to_string();
        put_json(&*self.memory, &dm_key(user), &room).await.map_err(mem_err)?;
        Ok(room)
    }

    async fn send_event(&self, room: &str, kind: &str, content: &Value) -> Result<String, ChannelError> {
        let path = format!("/rooms/{}/send/{kind}/{}", seg(room), txn());
        let v = self.call(Method::PUT, kind, &path, Some(content)).await?;
        v["event_id"]
            .as_str()
            .filter(|e| is_event_id(e))
            .map(str::to_string)
            .ok_or_else(|| platform(format!("{kind}: no event_id")))
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_user_id(to) {
            return Err(platform("a Matrix id is a full user id, e.g. @alice:example.org"));
        }
        self.bot().await?;
        let room = self.dm(to).await?;
        let code = ballot::new_code();
        let pending = Status::Pending { approved_by: vec![] };
        let event = self
            .send_event(&room, "m.room.message", &render::content(card, &pending, Some(&code)))
            .await?;
        // Remembered before the reactions are seeded: a vote may come the moment they show.
        let mut posted = Posted {
            room: room.clone(),
            event: event.clone(),
            seeds: Vec::new(),
            ballot: Ballot::new(to, buttons),
        };
        put_json(&*self.memory, &code_key(&code), &posted)
            .await
            .map_err(mem_err)?;
        put_json(&*self.memory, &event_key(&event), &code)
            .await
            .map_err(mem_err)?;
        for key in [render::APPROVE_KEY, render::DENY_KEY] {
            match self
                .send_event(&room, "m.reaction", &render::reaction(&event, key))
                .await
            {
                Ok(id) => posted.seeds.push(id),
                Err(e) => tracing::warn!(error = %e, "matrix: could not seed a reaction"),
            }
        }
        put_json(&*self.memory, &code_key(&code), &posted)
            .await
            .map_err(mem_err)?;
        Ok(MessageRef(format!("{room} {event} {code}")))
    }

    async fn update_card(
        &self,
        card: &Card,
        status: &Status,
        buttons: Option<&Buttons>,
        msg: &MessageRef,
    ) -> Result<(), ChannelError> {
        let (room, event, code) = parse_ref(msg)?;
        if status.is_open() && buttons.is_none() {
            return Ok(());
        }
        let open = status.is_open().then_some(code);
        let edit = render::edit(event, render::content(card, status, open));
        self.send_event(room, "m.room.message", &edit).await?;
        if status.is_open() {
            return Ok(());
        }
        // Closed: the code and reactions take no more votes.
        let posted: Option<Posted> = get_json(&*self.memory, &code_key(code)).await.map_err(mem_err)?;
        for seed in posted.map(|p| p.seeds).unwrap_or_default() {
            let path = format!("/rooms/{}/redact/{}/{}", seg(room), seg(&seed), txn());
            if let Err(e) = self.call(Method::PUT, "redact", &path, Some(&json!({}))).await {
                tracing::warn!(error = %e, "matrix: could not remove a seeded reaction");
            }
        }
        self.memory.remove(&code_key(code)).await.map_err(mem_err)?;
        self.memory.remove(&event_key(event)).await.map_err(mem_err)
    }

    async fn ack(&self, click: &Click, reply: &Reply) -> Result<(), ChannelError> {
        let (Some(room), Some(event)) = (
            click.ack["room"].as_str().filter(|r| is_room_id(r)),
            click.ack["event"].as_str().filter(|e| is_event_id(e)),
        ) else {
            return Err(platform("the vote carries no room"));
        };
        self.send_event(room, "m.room.message", &render::answer(event, reply))
            .await
            .map(drop)
    }

    /// The click a vote makes: the token of the decision it names, from the card it names. A
    /// code or card that is not an open card of this room keeps no token: the hub refuses the
    /// vote and records it.
    pub(crate) async fn click_for(&self, vote: verify::Vote) -> Result<Option<Click>, ChannelError> {
        let code = match &vote.target {
            verify::Target::Code(c) => Some(c.clone()),
            verify::Target::Card(e) => {
                let code: Option<String> = get_json(&*self.memory, &event_key(e)).await.map_err(mem_err)?;
                match code {
                    Some(c) => Some(c),
                    // A reaction on something that is not an open card: not a vote.
                    None => return Ok(None),
                }
            }
        };
        let posted: Option<Posted> = match &code {
            Some(c) => get_json(&*self.memory, &code_key(c)).await.map_err(mem_err)?,
            None => None,
        };
        let token = posted
            .filter(|p| p.room == vote.room)
            .map(|p| p.ballot.token(vote.decision))
            .unwrap_or_default();
        Ok(Some(Click {
            done: Default::default(),
            channel: NAME,
            user: vote.sender,
            token,
            ack: json!({"room": vote.room, "event": vote.event}),
        }))
    }
}

impl Channel for Matrix {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binds_tokens(&self) -> bool {
        // A code is a handle anyone in the room can type: it votes only as its own person.
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
        buttons: Option<&'a Buttons>,
        msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.update_card(card, status, buttons, msg))
    }

    fn acknowledge<'a>(&'a self, click: &'a Click, reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(self.ack(click, reply))
    }

    fn start(self: Arc<Self>, clicks: mpsc::Sender<Click>, shutdown: watch::Receiver<bool>) {
        tokio::spawn(self.read(clicks, shutdown));
    }
}
