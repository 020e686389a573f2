//! Mattermost: the bot sends each approver the card in a direct message, as a message
//! attachment with Approve / Deny (/ grant) buttons. Mattermost's server POSTs a press to the
//! control plane's `/callbacks/mattermost` with the button's server-side context (the signed
//! token and a callback secret, compared in constant time) and the pressing user's id, which
//! is looked up through the API before the vote counts. The post is patched in place when the
//! request is decided (buttons gone, outcome shown); a refused press gets an ephemeral reply.
//!
//! - [`render`]: the attachment (all agent text inside one fenced code block).
//! - [`api`]: REST API v4 calls with the bot token.
//! - [`verify`]: the action callback → [`Click`] (pure).

mod api;
pub mod render;
pub mod verify;

use airlock_vault::SecretBytes;
use http::Method;
use serde_json::{Value, json};

pub use verify::is_id;

use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::{Api, platform};

pub(crate) const NAME: &str = "mattermost";

pub struct MattermostConfig {
    /// The Mattermost server, e.g. `https://chat.example.com`.
    pub url: String,
    /// The bot account's access token.
    pub bot_token: SecretBytes,
    /// Put in every button's server-side context; a callback must carry it back.
    pub callback_secret: SecretBytes,
    /// The control plane as the Mattermost server reaches it.
    pub public_url: String,
}

pub struct Mattermost {
    api: Api,
    secret: SecretBytes,
    callback_url: String,
    bot_id: tokio::sync::OnceCell<String>,
}

impl std::fmt::Debug for Mattermost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mattermost")
            .field("callback_url", &self.callback_url)
            .finish_non_exhaustive()
    }
}

/// Mattermost usernames: lowercase letters, digits, `.`, `_`, `-`.
fn is_username(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn id_of(v: &Value, what: &str) -> Result<String, ChannelError> {
    v["id"]
        .as_str()
        .filter(|id| is_id(id))
        .map(str::to_string)
        .ok_or_else(|| platform(format!("{what}: no id in the answer")))
}

impl Mattermost {
    pub fn new(cfg: MattermostConfig) -> Mattermost {
        Mattermost {
            api: Api::new(&cfg.url, cfg.bot_token),
            secret: cfg.callback_secret,
            callback_url: format!("{}/callbacks/{NAME}", cfg.public_url.trim_end_matches('/')),
            bot_id: tokio::sync::OnceCell::new(),
        }
    }

    fn secret_str(&self) -> Result<&str, ChannelError> {
        std::str::from_utf8(self.secret.expose()).map_err(|_| platform("the callback secret is not UTF-8"))
    }

    async fn bot_id(&self) -> Result<&str, ChannelError> {
        self.bot_id
            .get_or_try_init(|| async { id_of(&self.api.call(Method::GET, "/users/me", None).await?, "users/me") })
            .await
            .map(String::as_str)
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !is_username(to) {
            return Err(platform("the approver's mattermost id is not a username"));
        }
        let bot = self.bot_id().await?.to_string();
        let user = id_of(
            &self
                .api
                .call(Method::GET, &format!("/users/username/{to}"), None)
                .await?,
            "users/username",
        )?;
        let dm = id_of(
            &self
                .api
                .call(Method::POST, "/channels/direct", Some(&json!([bot, user])))
                .await?,
            "channels/direct",
        )?;
        let status = Status::Pending { approved_by: vec![] };
        let props = render::props(card, &status, Some((buttons, &self.callback_url, self.secret_str()?)));
        let post = json!({ "channel_id": dm, "message": "", "props": props });
        let posted = self.api.call(Method::POST, "/posts", Some(&post)).await?;
        Ok(MessageRef(id_of(&posted, "posts")?))
    }

    async fn update_card(
        &self,
        card: &Card,
        status: &Status,
        buttons: Option<&Buttons>,
        msg: &MessageRef,
    ) -> Result<(), ChannelError> {
        if !is_id(&msg.0) {
            return Err(platform("not a Mattermost post id"));
        }
        if status.is_open() && buttons.is_none() {
            // Patching without them would take the buttons off a card still waiting for votes.
            return Ok(());
        }
        let secret = self.secret_str()?;
        let props = render::props(card, status, buttons.map(|b| (b, self.callback_url.as_str(), secret)));
        let patch = json!({ "props": props });
        self.api
            .call(Method::PUT, &format!("/posts/{}/patch", msg.0), Some(&patch))
            .await
            .map(drop)
    }

    async fn confirm(&self, click: &Click) -> Result<String, ChannelError> {
        if !is_id(&click.user) {
            return Err(platform("not a Mattermost user id"));
        }
        let u = self
            .api
            .call(Method::GET, &format!("/users/{}", click.user), None)
            .await?;
        if u["id"] != click.user.as_str() {
            return Err(platform("the API answered for another user"));
        }
        if u["delete_at"].as_i64().unwrap_or(1) != 0 {
            return Err(platform("the account is deactivated"));
        }
        if u["is_bot"].as_bool().unwrap_or(false) {
            return Err(platform("bots do not vote"));
        }
        u["username"]
            .as_str()
            .filter(|n| is_username(n))
            .map(str::to_string)
            .ok_or_else(|| platform("the user has no username"))
    }
}

impl Channel for Mattermost {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binds_tokens(&self) -> bool {
        // Defence in depth: a card forwarded to someone else's DM is no ballot of theirs.
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

    /// The answer travels back in the callback's own HTTP response.
    fn acknowledge<'a>(&'a self, _click: &'a Click, _reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async { Ok(()) })
    }

    fn callback(
        &self,
        _headers: &http::HeaderMap,
        body: &[u8],
        _now_secs: u64,
    ) -> Result<Option<Click>, CallbackError> {
        verify::callback(self.secret.expose(), body)
    }

    fn identify<'a>(&'a self, click: &'a Click) -> BoxFuture<'a, Result<String, ChannelError>> {
        Box::pin(self.confirm(click))
    }

    fn callback_body(&self, reply: &Reply) -> Value {
        render::answer(reply)
    }
}
