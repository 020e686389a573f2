//! Sending over SMTP with lettre: implicit TLS (port 465), STARTTLS required (587), or
//! plaintext to a relay on this machine only. The password is read from its sealed form for
//! each message and lives only as long as that connection.

use std::time::Duration;

use airlock_vault::SecretBytes;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::ChannelError;

use super::NAME;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plaintext greeting, then STARTTLS, required: no credentials or mail before it.
    StartTls,
    /// No TLS: only for a relay on loopback (the config refuses anything else).
    None,
}

pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<SecretBytes>,
    /// Extra trusted root (PEM) for a private relay, on top of the web PKI roots.
    pub ca_pem: Option<Vec<u8>>,
}

fn transport_error(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Transport {
        channel: NAME,
        detail: e.to_string(),
    }
}

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: NAME,
        detail: detail.into(),
    }
}

impl Smtp {
    fn tls(&self) -> Result<Tls, ChannelError> {
        let params = || {
            let mut b = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca_pem {
                b = b.add_root_certificate(Certificate::from_pem(pem).map_err(transport_error)?);
            }
            b.build_rustls().map_err(transport_error)
        };
        Ok(match self.security {
            Security::Tls => Tls::Wrapper(params()?),
            Security::StartTls => Tls::Required(params()?),
            Security::None => Tls::None,
        })
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, ChannelError> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(self.tls()?)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(pw)) = (&self.username, &self.password) {
            let pw = std::str::from_utf8(pw.expose()).map_err(|_| platform("the SMTP password is not UTF-8"))?;
            b = b.credentials(Credentials::new(user.clone(), pw.to_string()));
        }
        Ok(b.build())
    }

    /// Sends one multipart/alternative message; returns its Message-ID.
    pub async fn send(
        &self,
        from: &Mailbox,
        to: &str,
        subject: &str,
        text: String,
        html: String,
    ) -> Result<String, ChannelError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| platform("the approver's address is not valid"))?;
        let msg = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| platform(format!("could not build the message: {e}")))?;
        let id = msg.headers().get_raw("Message-ID").unwrap_or_default().to_string();
        self.transport()?.send(msg).await.map_err(transport_error)?;
        Ok(id)
    }
}
