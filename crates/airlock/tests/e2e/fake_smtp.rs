//! A local SMTP submission server that holds clients to what RFC 5321 (SMTP), RFC 3207
//! (STARTTLS) and RFC 4954 (AUTH) require of them: a greeting first, EHLO before anything,
//! STARTTLS offered in clear text and nothing else (no AUTH advertised, MAIL refused) until the
//! client switched to TLS, EHLO again after it, AUTH PLAIN with the right credentials before
//! MAIL, then RCPT and DATA with dot-stuffing undone. It records each accepted message raw.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::support::BySni;

pub const USER: &str = "airlock-mailer";
pub const PASSWORD: &str = "smtp-e2e-password-5b1f3c7e";

/// One message as it was accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Default)]
struct St {
    mails: Mutex<Vec<Mail>>,
    violations: Mutex<Vec<String>>,
    changed: Notify,
}

pub struct FakeSmtp {
    pub port: u16,
    /// The CA that signed the server's certificate (for `[channels.email] ca`).
    pub ca_pem: String,
    st: Arc<St>,
}

enum Next {
    Quit,
    StartTls,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (ca, files) = airlock_tls::CertificateAuthority::generate("fake SMTP CA").unwrap();
        let leaves = airlock_tls::LeafCache::new(Arc::new(ca), 4);
        let resolver = BySni {
            name: leaves.get("localhost").unwrap(),
            ip: leaves.get("127.0.0.1").unwrap(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let st = Arc::new(St::default());
        let s = st.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (st, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let mut plain = BufReader::new(tcp);
                    if plain
                        .get_mut()
                        .write_all(b"220 fake.smtp.test ESMTP ready\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let Ok(Next::StartTls) = converse(&mut plain, false, &st).await else {
                        return;
                    };
                    if !plain.buffer().is_empty() {
                        st.violation("bytes pipelined after STARTTLS, before the TLS handshake");
                        return;
                    }
                    let Ok(tls) = acceptor.accept(plain.into_inner()).await else {
                        st.violation("the TLS handshake after STARTTLS failed");
                        return;
                    };
                    let _ = converse(&mut BufReader::new(tls), true, &st).await;
                });
            }
        });
        FakeSmtp {
            port,
            ca_pem: files.cert_pem.clone(),
            st,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.st.mails.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }

    /// Waits (10 s at most) for a message to `to`.
    pub async fn mail_to(&self, to: &str) -> Mail {
        self.nth_mail_to(to, 0).await
    }

    /// Waits (10 s at most) for the `nth` message to `to` (from 0).
    pub async fn nth_mail_to(&self, to: &str, nth: usize) -> Mail {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let changed = self.st.changed.notified();
                if let Some(m) = self
                    .mails()
                    .into_iter()
                    .filter(|m| m.to.iter().any(|t| t == to))
                    .nth(nth)
                {
                    return m;
                }
                changed.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no mail {nth} to {to}; violations: {:?}", self.violations()))
    }
}

impl St {
    fn violation(&self, v: &str) {
        self.violations.lock().unwrap().push(v.to_string());
        self.changed.notify_waiters();
    }
}

/// `<addr>` from `MAIL FROM:<addr> …` / `RCPT TO:<addr>`.
fn path(arg: &str) -> Option<String> {
    let start = arg.find('<')?;
    let end = arg[start..].find('>')? + start;
    Some(arg[start + 1..end].to_string())
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    tls: bool,
    st: &St,
) -> std::io::Result<Next> {
    let (mut helo, mut authed) = (false, false);
    let (mut from, mut to) = (None::<String>, Vec::new());
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await? == 0 {
            return Ok(Next::Quit);
        }
        if !line.ends_with("\r\n") {
            st.violation(&format!("a command line not ended by CRLF: {line:?}"));
        }
        let line = line.trim_end();
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                helo = true;
                if tls {
                    "250-fake.smtp.test\r\n250-AUTH PLAIN\r\n250 8BITMIME".into()
                } else {
                    "250-fake.smtp.test\r\n250-STARTTLS\r\n250 8BITMIME".into()
                }
            }
            "STARTTLS" if !tls && helo => {
                s.get_mut().write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                return Ok(Next::StartTls);
            }
            "AUTH" if !tls => {
                st.violation("AUTH in clear text");
                "530 5.7.0 Must issue a STARTTLS command first".into()
            }
            "AUTH" => {
                let plain = arg.strip_prefix("PLAIN ").unwrap_or("");
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(plain)
                    .unwrap_or_default();
                if decoded == format!("\0{USER}\0{PASSWORD}").as_bytes() {
                    authed = true;
                    "235 2.7.0 Authentication successful".into()
                } else {
                    st.violation("AUTH with wrong credentials or mechanism");
                    "535 5.7.8 Authentication credentials invalid".into()
                }
            }
            "MAIL" if !authed => {
                st.violation("MAIL before AUTH");
                "530 5.7.0 Authentication required".into()
            }
            "MAIL" => {
                from = path(arg);
                "250 2.1.0 OK".into()
            }
            "RCPT" if from.is_some() => {
                to.extend(path(arg));
                "250 2.1.5 OK".into()
            }
            "DATA" if !to.is_empty() => {
                s.get_mut()
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if s.read_line(&mut l).await? == 0 {
                        return Ok(Next::Quit);
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                st.mails.lock().unwrap().push(Mail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                });
                st.changed.notify_waiters();
                "250 2.0.0 OK queued".into()
            }
            "RSET" | "NOOP" => "250 2.0.0 OK".into(),
            "QUIT" => {
                s.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(Next::Quit);
            }
            _ => {
                st.violation(&format!("out of order or unknown: {line}"));
                "503 5.5.1 Bad sequence of commands".into()
            }
        };
        s.get_mut().write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}
