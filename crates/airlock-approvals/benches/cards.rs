//! Hold → every card sent, per platform: a real hub (SQLite store, audit writer) with the real
//! channel of each platform that has native cards, talking to the local fake of that platform
//! the channel tests use (the fakes enforce the documented wire format). A card counts as sent
//! when the platform's fake accepted it (the channel's `send` returned its message reference).
//! Then one row with every platform at once: hold → the last of the 11 cards sent.
//!
//! Not email: its fake is an SMTP server behind the airlock binary's TLS test support.
//!
//! `cargo bench -p airlock-approvals --bench cards` (figures in docs/performance.md).

mod common;

#[path = "../../airlock-channels/tests/fake_discord/mod.rs"]
mod fake_discord;
#[path = "../../airlock-channels/tests/fake_gchat/mod.rs"]
mod fake_gchat;
#[path = "../../airlock-channels/tests/fake_slack/mod.rs"]
mod fake_slack;
#[path = "../../airlock-channels/tests/fake_teams/mod.rs"]
mod fake_teams;
#[path = "../../airlock-channels/tests/fake/mod.rs"]
mod fake_tg;
#[path = "../../airlock-channels/tests/fake_webex/mod.rs"]
mod fake_webex;

/// The fakes of the airlock binary's end-to-end tests.
#[allow(dead_code)]
#[path = "common/e2e.rs"]
mod e2e;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_approvals::{Hub, HubConfig, Verdict};
use airlock_channels::memory::Volatile;
use airlock_channels::token::Decision;
use airlock_channels::{
    BoxFuture, Buttons, CallbackError, Card, Channel, ChannelError, Click, MessageRef, Person, Reply, Status,
};
use airlock_channels::{discord, gchat, matrix, mattermost, ntfy, signal, slack, teams, telegram, webex, whatsapp};
use airlock_store::{AuditWriter, Signer, Store, WriterOptions};
use airlock_vault::SecretBytes;
use common::{pct, request};
use tokio::sync::{mpsc, watch};

const PUBLIC: &str = "https://airlock.example.test";

fn secret(s: &str) -> SecretBytes {
    SecretBytes::new(s.as_bytes().to_vec())
}

/// A channel that reports when each card was sent (the platform accepted it).
struct Timed {
    inner: Arc<dyn Channel>,
    sent: mpsc::UnboundedSender<(&'static str, Instant, bool)>,
}

impl Channel for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn address(&self, person: &Person) -> Option<String> {
        self.inner.address(person)
    }
    fn binds_tokens(&self) -> bool {
        self.inner.binds_tokens()
    }
    fn send<'a>(
        &'a self,
        card: &'a Card,
        buttons: &'a Buttons,
        to: &'a str,
    ) -> BoxFuture<'a, Result<MessageRef, ChannelError>> {
        Box::pin(async move {
            let r = self.inner.send(card, buttons, to).await;
            if let Err(e) = &r {
                eprintln!("{}: send failed: {e}", self.name());
            }
            let _ = self.sent.send((self.name(), Instant::now(), r.is_ok()));
            r
        })
    }
    fn update<'a>(
        &'a self,
        card: &'a Card,
        status: &'a Status,
        buttons: Option<&'a Buttons>,
        msg: &'a MessageRef,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        self.inner.update(card, status, buttons, msg)
    }
    fn acknowledge<'a>(&'a self, click: &'a Click, reply: &'a Reply) -> BoxFuture<'a, Result<(), ChannelError>> {
        self.inner.acknowledge(click, reply)
    }
    fn callback(&self, h: &http::HeaderMap, body: &[u8], now: u64) -> Result<Option<Click>, CallbackError> {
        self.inner.callback(h, body, now)
    }
    fn start(self: Arc<Self>, clicks: mpsc::Sender<Click>, shutdown: watch::Receiver<bool>) {
        self.inner.clone().start(clicks, shutdown)
    }
}

/// The running fakes (kept alive for the whole run) and each platform's channel and id.
struct Platforms {
    channels: Vec<(Arc<dyn Channel>, &'static str)>,
    _fakes: Vec<Box<dyn std::any::Any>>,
}

async fn platforms() -> Platforms {
    let mut channels: Vec<(Arc<dyn Channel>, &'static str)> = Vec::new();
    let mut fakes: Vec<Box<dyn std::any::Any>> = Vec::new();

    let f = fake_slack::Fake::start().await;
    channels.push((
        Arc::new(slack::Slack::new(slack::SlackConfig {
            api_base: f.api_base(),
            bot_token: secret(fake_slack::BOT),
            app_token: None,
            signing_secret: None,
        })),
        "U0ALICE",
    ));
    fakes.push(Box::new(f));

    let f = fake_teams::Fake::start().await;
    let t = teams::Teams::new(teams::TeamsConfig {
        app_id: fake_teams::APP_ID.into(),
        app_password: secret(fake_teams::PASSWORD),
        tenant_id: Some(fake_teams::TENANT.into()),
        token_url: f.token_url(),
        openid_url: f.openid_url(),
        refetch_after: Duration::ZERO,
        conversations: Arc::new(teams::MemoryConversations::default()),
    });
    // Alice wrote to the bot once: her conversation is known.
    const AAD: &str = "6f1d2c3b-aaaa-4bbb-8ccc-123456789abc";
    let hello = f.hello(AAD);
    let mut h = http::HeaderMap::new();
    let bearer = f.bearer(&hello, fake_teams::Mint::Valid).unwrap();
    h.insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    let c = t.callback(&h, &serde_json::to_vec(&hello).unwrap(), 0).unwrap();
    if let Some(c) = c {
        let _ = t.resolve(c, fake_teams::now_secs()).await;
    }
    channels.push((Arc::new(t), AAD));
    fakes.push(Box::new(f));

    let f = fake_discord::Fake::start().await;
    channels.push((
        Arc::new(discord::Discord::new(discord::DiscordConfig {
            api_base: f.api_base(),
            bot_token: secret(fake_discord::BOT),
            gateway: false,
            public_key: None,
            memory: Arc::new(Volatile::new()),
        })),
        "80351110224678912",
    ));
    fakes.push(Box::new(f));

    let f = fake_gchat::Fake::start().await;
    const GCHAT: &str = "users/1234567890";
    f.add_app(GCHAT);
    channels.push((
        Arc::new(gchat::Gchat::new(gchat::GchatConfig {
            api_base: f.api_base(),
            service_account: gchat::api::ServiceAccount::from_json(&secret(&fake_gchat::key_file())).unwrap(),
            token_url: Some(f.token_url()),
            audience: None,
            subscription: None,
            pubsub_base: f.pubsub_base(),
            jwks_url: Some(f.jwks_url()),
            refetch_after: Duration::ZERO,
        })),
        GCHAT,
    ));
    fakes.push(Box::new(f));

    let f = e2e::fake_whatsapp::FakeWhatsApp::start().await;
    const WA: &str = "15551234567";
    f.open_window(WA);
    channels.push((
        Arc::new(whatsapp::WhatsApp::new(whatsapp::WhatsAppConfig {
            api_base: f.api_base.clone(),
            phone_number_id: e2e::fake_whatsapp::PHONE_ID.into(),
            access_token: secret(e2e::fake_whatsapp::TOKEN),
            app_secret: secret(e2e::fake_whatsapp::APP_SECRET),
            verify_token: secret(e2e::fake_whatsapp::VERIFY),
            public_url: PUBLIC.into(),
            template: None,
            memory: Arc::new(Volatile::new()),
        })),
        WA,
    ));
    fakes.push(Box::new(f));

    let f = fake_webex::Fake::start().await;
    channels.push((
        Arc::new(webex::Webex::new(webex::WebexConfig {
            api_base: f.api_base(),
            bot_token: secret(fake_webex::BOT),
            webhook_secret: secret(fake_webex::SECRET),
        })),
        "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9hbGljZQ",
    ));
    fakes.push(Box::new(f));

    let f = fake_tg::telegram::FakeTelegram::start().await;
    channels.push((
        Arc::new(telegram::Telegram::new(telegram::TelegramConfig {
            api_base: f.base.clone(),
            bot_token: secret(fake_tg::telegram::TOKEN),
            // A webhook secret: clicks by webhook, no getUpdates polling during the run.
            webhook_secret: Some(secret("bench-webhook-secret-0123456789")),
        })),
        "4242",
    ));
    fakes.push(Box::new(f));

    let f = e2e::fake_matrix::FakeMatrix::start().await;
    channels.push((
        Arc::new(matrix::Matrix::new(matrix::MatrixConfig {
            homeserver: f.url.clone(),
            access_token: secret(e2e::fake_matrix::TOKEN),
            memory: Arc::new(Volatile::new()),
            poll_timeout: Duration::from_secs(1),
        })),
        "@alice:fake.test",
    ));
    fakes.push(Box::new(f));

    let f = e2e::fake_signal::FakeSignal::start().await;
    channels.push((
        Arc::new(signal::Signal::new(signal::SignalConfig {
            url: f.url.clone(),
            account: Some(e2e::fake_signal::ACCOUNT.into()),
            memory: Arc::new(Volatile::new()),
        })),
        "+15551234567",
    ));
    fakes.push(Box::new(f));

    let f = e2e::fake_ntfy::FakeNtfy::start().await;
    channels.push((
        Arc::new(ntfy::Ntfy::new(ntfy::NtfyConfig {
            server: f.url.clone(),
            token: Some(secret(e2e::fake_ntfy::TOKEN)),
            public_url: PUBLIC.into(),
            priority: 4,
        })),
        "airlock-alice",
    ));
    fakes.push(Box::new(f));

    let f = e2e::fake_mattermost::FakeMattermost::start(&[("alice", true)]).await;
    channels.push((
        Arc::new(mattermost::Mattermost::new(mattermost::MattermostConfig {
            url: f.url.clone(),
            bot_token: secret(e2e::fake_mattermost::BOT),
            callback_secret: secret("bench-mattermost-callback-secret-42"),
            public_url: PUBLIC.into(),
        })),
        "alice",
    ));
    fakes.push(Box::new(f));

    Platforms {
        channels,
        _fakes: fakes,
    }
}

async fn hub(dir: &std::path::Path, channels: Vec<Arc<dyn Channel>>, ids: BTreeMap<String, String>) -> Hub {
    let store = Store::create_sqlite(&dir.join("a.db")).await.unwrap();
    let signer: Signer = Arc::new(|m: &[u8]| (m.to_vec(), b"k".to_vec()));
    let (audit, _) = AuditWriter::start_with(
        store.clone(),
        signer,
        WriterOptions {
            queue_capacity: 100_000,
            ..WriterOptions::default()
        },
    )
    .await
    .unwrap();
    Hub::start(
        HubConfig {
            people: vec![Person {
                name: "alice".into(),
                roles: vec!["owner".into()],
                ids,
            }],
            channels,
            token_key: vec![9; 32],
            lease: Duration::from_secs(10),
        },
        store,
        audit,
    )
    .await
    .unwrap()
}

/// `n` holds one after another (the first tenth warm-up), each approved once its cards are
/// out; returns hold → last card sent, and how many sends failed.
async fn run(chosen: &[(Arc<dyn Channel>, &'static str)], n: usize) -> (Vec<Duration>, usize) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut ids = BTreeMap::new();
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    for (ch, id) in chosen {
        ids.insert(ch.name().to_string(), id.to_string());
        channels.push(Arc::new(Timed {
            inner: ch.clone(),
            sent: tx.clone(),
        }));
    }
    let dir = tempfile::tempdir().unwrap();
    let h = hub(dir.path(), channels, ids).await;
    let mut took = Vec::with_capacity(n);
    let mut failed = 0;
    for i in 0..n {
        let t0 = Instant::now();
        let ticket = h.hold(request(i)).await.unwrap();
        let mut last = t0;
        for _ in 0..chosen.len() {
            let (_, at, ok) = rx.recv().await.unwrap();
            failed += usize::from(!ok);
            last = last.max(at);
        }
        if i >= n / 10 {
            took.push(last - t0);
        }
        let id = ticket.id().to_string();
        let waiter = tokio::spawn(ticket.wait());
        h.vote(&id, "alice", Decision::Approve, "bench").await.unwrap();
        assert!(matches!(waiter.await.unwrap(), Verdict::Approved { .. }));
    }
    // The hub's channel readers (Matrix's /sync, Signal's stream) stop with it: left running,
    // each row's readers would still be polling the shared fakes during the next rows.
    h.shutdown().await;
    (took, failed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("CARDS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let p = platforms().await;
    println!(
        "hold → every card sent, {n} holds per row (first {} warm-up), ms:",
        n / 10
    );
    println!("| platform | p50 | p99 | failed sends |");
    println!("|---|---|---|---|");
    for one in &p.channels {
        let (mut took, failed) = run(std::slice::from_ref(one), n).await;
        println!(
            "| {} | {:.2} | {:.2} | {failed} |",
            one.0.name(),
            pct(&mut took, 0.50),
            pct(&mut took, 0.99)
        );
    }
    let (mut took, failed) = run(&p.channels, n).await;
    println!(
        "| all {} at once (the last card) | {:.2} | {:.2} | {failed} |",
        p.channels.len(),
        pct(&mut took, 0.50),
        pct(&mut took, 0.99)
    );
}
