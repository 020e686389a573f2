//! Email (SMTP): one message per approver, a text + HTML card with Approve / Deny (/ Grant)
//! links to the control plane's landing page. Opening a link shows the card and one
//! confirming form; only that form's POST votes (see [`verify`]), so mail scanners that follow
//! links decide nothing.
//!
//! Email vouches for nobody either: whoever has an approver's message has their links. So each
//! message's tokens are minted for its person alone ([`Channel::binds_tokens`]) and a link
//! edited to name someone else is refused by the hub.
//!
//! - [`render`]: the subject, text and HTML parts.
//! - [`api`]: SMTP with lettre (implicit TLS, STARTTLS required, or loopback plaintext).
//! - [`verify`]: links and confirmations → [`Click`] (pure).

pub mod api;
pub mod render;
pub mod verify;

use lettre::message::Mailbox;

pub use api::{Security, Smtp};

use crate::{BoxFuture, Buttons, Card, Channel, ChannelError, Click, MessageRef, Reply, Status};
use api::platform;

pub(crate) const NAME: &str = "email";

pub struct EmailConfig {
    pub smtp: Smtp,
    /// `From:`, e.g. `airlock <airlock@example.com>`.
    pub from: String,
    /// The control plane as approvers' browsers reach it: links go to `{base_url}/email/vote`.
    pub base_url: String,
}

pub struct Email {
    smtp: Smtp,
    from: Mailbox,
    base_url: String,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("smtp", &format_args!("{}:{}", self.smtp.host, self.smtp.port))
            .field("from", &self.from.to_string())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Email {
    /// Fails only on a `from` that is not a mailbox (the config checks it first).
    pub fn new(cfg: EmailConfig) -> Result<Email, ChannelError> {
        let from = cfg
            .from
            .parse()
            .map_err(|_| platform("channels.email.from is not a mailbox such as \"airlock <airlock@example.com>\""))?;
        Ok(Email {
            smtp: cfg.smtp,
            from,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
        })
    }

    async fn send_card(&self, card: &Card, buttons: &Buttons, to: &str) -> Result<MessageRef, ChannelError> {
        if !verify::is_address(to) {
            return Err(platform("the approver's email is not an address"));
        }
        let links = render::Links::new(&self.base_url, to, buttons);
        let id = self
            .smtp
            .send(
                &self.from,
                to,
                &render::subject(card),
                render::text(card, &links),
                render::html(card, &links),
            )
            .await?;
        Ok(MessageRef(format!("{to} {id}")))
    }
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        NAME
    }

    fn binds_tokens(&self) -> bool {
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

    /// A sent email cannot change, and a second message per decision would be noise: the
    /// landing page shows the outcome to whoever opens a link later.
    fn update<'a>(
        &'a self,
        _card: &'a Card,
        _status: &'a Status,
        _buttons: Option<&'a Buttons>,
        _msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async { Ok(()) })
    }

    /// The confirming page itself shows the hub's answer.
    fn acknowledge<'a>(&'a self, _click: &'a Click, _reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async { Ok(()) })
    }
}
