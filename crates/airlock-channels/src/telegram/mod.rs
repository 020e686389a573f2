//! Telegram Bot API channel: cards are sent as HTML messages with an inline keyboard whose
//! `callback_data` are the signed button tokens; clicks arrive as `callback_query` updates,
//! either posted to the control listener (webhook mode, authenticated by the secret token
//! Telegram echoes in `X-Telegram-Bot-Api-Secret-Token`) or fetched by long polling.
//!
//! The bot token is part of every API URL. It lives in [`SecretBytes`], the URL is built in a
//! `SecretBytes` buffer per call, and every error is stripped of its URL (`without_url`) and
//! scrubbed of the token before it can reach a log line.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use airlock_vault::SecretBytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::token::ct_eq;
use crate::{BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};

mod html;
mod poll;

pub use html::{MAX_TEXT_LEN, escape, keyboard, message_html, status_line};

const NAME: &str = "telegram";
/// The header carrying `setWebhook`'s `secret_token` on every webhook delivery.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// Longest notification text `answerCallbackQuery` takes.
const MAX_ANSWER_LEN: usize = 200;
/// Ordinary API calls; long polls add their own timeout to this.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// Normally [`TelegramConfig::DEFAULT_API_BASE`]; tests point it at a local fake.
    pub api_base: String,
    pub bot_token: SecretBytes,
    /// Webhook mode: the `secret_token` given to `setWebhook`. `None` → getUpdates long polling.
    pub webhook_secret: Option<SecretBytes>,
}

impl TelegramConfig {
    pub const DEFAULT_API_BASE: &'static str = "https://api.telegram.org";

    /// Polling mode against the real Bot API.
    pub fn new(bot_token: SecretBytes) -> TelegramConfig {
        TelegramConfig {
            api_base: Self::DEFAULT_API_BASE.to_string(),
            bot_token,
            webhook_secret: None,
        }
    }
}

pub struct Telegram {
    api_base: String,
    bot_token: SecretBytes,
    /// The token is used in URLs only if it looks like a Bot API token (`123:AbC-_`).
    token_ok: bool,
    webhook_secret: Option<SecretBytes>,
    http: reqwest::Client,
    poll_timeout_secs: u64,
}

impl fmt::Debug for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telegram")
            .field("api_base", &self.api_base)
            .field("bot_token", &self.bot_token)
            .field("webhook_mode", &self.webhook_secret.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    ok: bool,
    #[serde(default)]
    result: Value,
    error_code: Option<i64>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: NAME,
        detail: detail.into(),
    }
}

/// Cuts a plain text to Telegram's `answerCallbackQuery` limit (counted in UTF-16 units,
/// which is never less than characters).
fn answer_text(s: &str) -> String {
    let s = crate::text::visible(s);
    if s.encode_utf16().count() <= MAX_ANSWER_LEN {
        return s;
    }
    let mut out = String::new();
    let mut n = 0;
    for c in s.chars() {
        if n + c.len_utf16() > MAX_ANSWER_LEN - 1 {
            break;
        }
        n += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

/// Turns one Update into a click. `Ok(None)` for updates that are not button presses.
fn click_from_update(update: &Value) -> Result<Option<Click>, String> {
    let Some(obj) = update.as_object() else {
        return Err("update is not a JSON object".into());
    };
    if !obj.get("update_id").is_some_and(Value::is_i64) {
        return Err("update has no update_id".into());
    }
    let Some(cq) = obj.get("callback_query") else {
        return Ok(None);
    };
    let Some(id) = cq["id"].as_str() else {
        return Err("callback_query has no id".into());
    };
    let Some(user) = cq["from"]["id"].as_i64() else {
        return Err("callback_query has no from.id".into());
    };
    // Game buttons send no data: nothing to decide on.
    let Some(data) = cq["data"].as_str() else {
        return Ok(None);
    };
    Ok(Some(Click {
        done: Default::default(),
        channel: NAME,
        user: user.to_string(),
        token: data.to_string(),
        ack: json!({
            "callback_query_id": id,
            "chat_id": cq["message"]["chat"]["id"],
            "message_id": cq["message"]["message_id"],
        }),
    }))
}

impl Telegram {
    pub fn new(cfg: TelegramConfig) -> Telegram {
        let token_ok = std::str::from_utf8(cfg.bot_token.expose()).is_ok_and(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-')
        });
        let http = crate::client::api_client(None);
        Telegram {
            api_base: cfg.api_base.trim_end_matches('/').to_string(),
            bot_token: cfg.bot_token,
            token_ok,
            webhook_secret: cfg.webhook_secret,
            http,
            poll_timeout_secs: 25,
        }
    }

    /// Long-poll timeout for getUpdates in seconds (default 25); tests use short ones.
    pub fn with_poll_timeout(mut self, secs: u64) -> Telegram {
        self.poll_timeout_secs = secs;
        self
    }

    /// Removes every trace of the token from an error text, whatever produced it.
    fn scrub(&self, detail: String) -> String {
        match std::str::from_utf8(self.bot_token.expose()) {
            Ok(t) if !t.is_empty() => detail.replace(t, "[redacted]"),
            _ => detail,
        }
    }

    fn transport(&self, e: reqwest::Error) -> ChannelError {
        // Drop the URL (it holds the token), then describe the cause chain.
        let e = e.without_url();
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        ChannelError::Transport {
            channel: NAME,
            detail: self.scrub(detail),
        }
    }

    /// POSTs one Bot API method and returns its `result`.
    async fn call(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, ChannelError> {
        if !self.token_ok {
            return Err(platform("the bot token is not a valid Telegram bot token"));
        }
        // Sized up front so no reallocation leaves an unwiped copy of the token behind.
        let mut url = Vec::with_capacity(self.api_base.len() + self.bot_token.len() + method.len() + 5);
        url.extend_from_slice(self.api_base.as_bytes());
        url.extend_from_slice(b"/bot");
        url.extend_from_slice(self.bot_token.expose());
        url.push(b'/');
        url.extend_from_slice(method.as_bytes());
        let url = SecretBytes::new(url);
        let url = std::str::from_utf8(url.expose()).map_err(|_| platform("bad API URL"))?;
        let resp = self
            .http
            .post(url)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        let parsed: ApiResponse = serde_json::from_slice(&bytes)
            .map_err(|_| platform(format!("{method}: HTTP {status} without a Bot API answer")))?;
        if parsed.ok {
            return Ok(parsed.result);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || parsed.error_code == Some(429) {
            return Err(ChannelError::RateLimited {
                channel: NAME,
                retry_after_secs: parsed.parameters.and_then(|p| p.retry_after).unwrap_or(1),
            });
        }
        let description = parsed.description.unwrap_or_else(|| format!("HTTP {status}"));
        let description: String = description.chars().take(300).collect();
        Err(platform(self.scrub(format!("{method}: {description}"))))
    }
}

/// "chat_id/message_id"; chat ids are integers or `@channel` names, never containing '/'.
fn parse_ref(msg: &MessageRef) -> Result<(&str, i64), ChannelError> {
    msg.0
        .rsplit_once('/')
        .and_then(|(chat, id)| Some((chat, id.parse().ok()?)))
        .filter(|(chat, _)| !chat.is_empty())
        .ok_or_else(|| platform("malformed message reference"))
}

fn is_not_modified(e: &ChannelError) -> bool {
    matches!(e, ChannelError::Platform { detail, .. } if detail.contains("message is not modified"))
}

impl Channel for Telegram {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(
        &'a self,
        card: &'a Card,
        buttons: &'a Buttons,
        to: &'a str,
    ) -> BoxFuture<'a, Result<MessageRef, ChannelError>> {
        Box::pin(async move {
            let tokens = [Some(&buttons.approve), Some(&buttons.deny), buttons.grant.as_ref()];
            // Tokens are ≤ 64 bytes by construction; anything else is a bug, never sent.
            if tokens
                .into_iter()
                .flatten()
                .any(|t| t.is_empty() || t.len() > crate::token::MAX_LEN)
            {
                return Err(platform("refusing to send: a button token is not 1-64 bytes"));
            }
            let kb = keyboard(buttons, card.grant_secs);
            let body = json!({
                "chat_id": to,
                "text": message_html(card, &Status::Pending { approved_by: Vec::new() }),
                "parse_mode": "HTML",
                "link_preview_options": { "is_disabled": true },
                "reply_markup": kb,
            });
            let result = self.call("sendMessage", &body, CALL_TIMEOUT).await?;
            let Some(message_id) = result["message_id"].as_i64() else {
                return Err(platform("sendMessage: no message_id in the result"));
            };
            let chat = match &result["chat"]["id"] {
                Value::Number(n) => n.to_string(),
                _ => to.to_string(),
            };
            let msg = MessageRef(format!("{chat}/{message_id}"));
            Ok(msg)
        })
    }

    fn update<'a>(
        &'a self,
        card: &'a Card,
        status: &'a Status,
        buttons: Option<&'a Buttons>,
        msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let (chat, message_id) = parse_ref(msg)?;
            // `editMessageText` without `reply_markup` removes a keyboard: an open card is
            // re-sent its own.
            let markup = if status.is_open() {
                match buttons {
                    Some(b) => keyboard(b, card.grant_secs),
                    // Editing would drop the buttons others still need: leave the card as is.
                    None => {
                        tracing::debug!(msg = %msg.0, "telegram: open card without a known keyboard, not edited");
                        return Ok(());
                    }
                }
            } else {
                json!({ "inline_keyboard": [] })
            };
            let body = json!({
                "chat_id": chat,
                "message_id": message_id,
                "text": message_html(card, status),
                "parse_mode": "HTML",
                "link_preview_options": { "is_disabled": true },
                "reply_markup": markup,
            });
            match self.call("editMessageText", &body, CALL_TIMEOUT).await {
                // The card already shows this status (a repeated update): nothing to do.
                Err(e) if is_not_modified(&e) => {}
                r => {
                    r?;
                }
            }
            Ok(())
        })
    }

    fn acknowledge<'a>(&'a self, click: &'a Click, reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let Some(id) = click.ack["callback_query_id"].as_str() else {
                return Err(platform("click has no callback_query_id to answer"));
            };
            let body = json!({
                "callback_query_id": id,
                "text": answer_text(&reply.text),
                // A refused vote is worth a dialog the clicker has to dismiss.
                "show_alert": !reply.ok,
            });
            self.call("answerCallbackQuery", &body, CALL_TIMEOUT).await.map(|_| ())
        })
    }

    fn callback(&self, headers: &http::HeaderMap, body: &[u8], _now_secs: u64) -> Result<Option<Click>, CallbackError> {
        let Some(secret) = &self.webhook_secret else {
            return Err(CallbackError::NotSupported);
        };
        let got = headers
            .get(SECRET_HEADER)
            .ok_or(CallbackError::MissingHeader(SECRET_HEADER))?;
        if !ct_eq(got.as_bytes(), secret.expose()) {
            return Err(CallbackError::BadSignature);
        }
        let update: Value = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        click_from_update(&update).map_err(CallbackError::Malformed)
    }

    fn start(self: Arc<Self>, clicks: mpsc::Sender<Click>, shutdown: watch::Receiver<bool>) {
        if self.webhook_secret.is_some() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(self.poll(clicks, shutdown));
            }
            Err(_) => tracing::error!("telegram: start() called outside a Tokio runtime; not polling"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_become_clicks() {
        let u = json!({"update_id": 7, "callback_query": {"id": "q1", "from": {"id": 42},
            "data": "tok", "message": {"message_id": 5, "chat": {"id": -100}}}});
        let c = click_from_update(&u).unwrap().unwrap();
        assert_eq!((c.user.as_str(), c.token.as_str()), ("42", "tok"));
        assert_eq!(
            c.ack,
            json!({"callback_query_id": "q1", "chat_id": -100, "message_id": 5})
        );
        assert_eq!(click_from_update(&json!({"update_id": 8, "message": {}})), Ok(None));
        assert!(click_from_update(&json!({"callback_query": {}})).is_err());
        assert!(click_from_update(&json!({"update_id": 9, "callback_query": {"id": "x"}})).is_err());
    }

    #[test]
    fn helpers() {
        assert!(ct_eq(b"s3cret", b"s3cret"));
        assert!(!ct_eq(b"s3cret", b"s3cres"));
        assert!(!ct_eq(b"s3cret", b"s3cre"));
        let long = answer_text(&"é".repeat(500));
        assert_eq!(long.encode_utf16().count(), MAX_ANSWER_LEN);
        assert!(long.ends_with('…'));
        assert_eq!(answer_text("ok\u{202e}"), "ok<U+202E>");
        assert_eq!(parse_ref(&MessageRef("-100/5".into())).unwrap(), ("-100", 5));
        assert!(parse_ref(&MessageRef("5".into())).is_err());
        assert!(parse_ref(&MessageRef("/5".into())).is_err());
    }
}
