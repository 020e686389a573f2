//! Support for the channel end-to-end tests: the platform fakes of airlock-channels' own
//! tests (reused as they are), configs, and the agent's
//! side of a held request. Slack and webhook callback signing lives in `signing`, the
//! webhook receiver in `receiver`.
#![allow(dead_code)]

#[path = "../../../airlock-channels/tests/fake_discord/mod.rs"]
pub mod fake_discord;
#[path = "../../../airlock-channels/tests/fake_gchat/mod.rs"]
pub mod fake_gchat;
pub mod fake_matrix;
pub mod fake_mattermost;
pub mod fake_ntfy;
pub mod fake_signal;
#[path = "../../../airlock-channels/tests/fake_slack/mod.rs"]
pub mod fake_slack;
pub mod fake_smtp;
#[path = "../../../airlock-channels/tests/fake_teams/mod.rs"]
pub mod fake_teams;
#[path = "../../../airlock-channels/tests/fake/mod.rs"]
pub mod fake_tg;
#[path = "../../../airlock-channels/tests/fake_webex/mod.rs"]
pub mod fake_webex;
pub mod fake_whatsapp;
pub mod receiver;
pub mod signing;
mod wait;
pub use wait::wait_notified;

use airlock_channels::token::{Claims, Decision};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::support::{Gateway, Upstream};
use fake_tg::telegram::FakeTelegram;

/// The credential the gateway injects: it must reach the upstream and nothing else.
pub const REAL: &str = "sk-live-REAL-e2e-4c3b2a19d8";
pub const MM_SECRET: &str = "e2e-mattermost-callback-secret-41c9";
pub const SIGNING: &str = "e2e-slack-signing-secret-77f1c0";
/// `whsec_` + base64 of a 32-byte key.
pub const WEBHOOK_SECRET: &str = "whsec_YWlybG9jayBlMmUgd2ViaG9vayBrZXkgMzIgYnl0ZXM=";

/// Channel credentials as the gateway reads them: from its environment, never the file.
pub const ENV: &[(&str, &str)] = &[
    ("TG_TOKEN", fake_tg::telegram::TOKEN),
    ("SLACK_BOT", fake_slack::BOT),
    ("SLACK_APP", fake_slack::APP),
    ("SLACK_SIGNING", SIGNING),
    ("WEBHOOK_SECRET", WEBHOOK_SECRET),
    ("NTFY_TOKEN", fake_ntfy::TOKEN),
    ("MM_BOT", fake_mattermost::BOT),
    ("MM_SECRET", MM_SECRET),
    ("DISCORD_BOT", fake_discord::BOT),
    ("WEBEX_BOT", fake_webex::BOT),
    ("WEBEX_SECRET", fake_webex::SECRET),
    ("SMTP_PASSWORD", fake_smtp::PASSWORD),
    ("TEAMS_PASSWORD", fake_teams::PASSWORD),
    ("WA_TOKEN", fake_whatsapp::TOKEN),
    ("WA_SECRET", fake_whatsapp::APP_SECRET),
    ("WA_VERIFY", fake_whatsapp::VERIFY),
    ("MATRIX_TOKEN", fake_matrix::TOKEN),
];

/// Every credential a surface must never show (the channel ones are expected only where
/// the platform itself needs them: a URL, an Authorization header).
pub const CREDENTIALS: &[&str] = &[
    REAL,
    fake_tg::telegram::TOKEN,
    fake_slack::BOT,
    fake_slack::APP,
    fake_discord::BOT,
    fake_webex::BOT,
    fake_webex::SECRET,
    SIGNING,
    WEBHOOK_SECRET,
    "YWlybG9jayBlMmUgd2ViaG9vayBrZXkgMzIgYnl0ZXM",
    fake_ntfy::TOKEN,
    fake_mattermost::BOT,
    MM_SECRET,
    fake_smtp::PASSWORD,
    fake_teams::PASSWORD,
    fake_teams::ACCESS,
    fake_gchat::ACCESS,
    fake_whatsapp::TOKEN,
    fake_whatsapp::APP_SECRET,
    fake_whatsapp::VERIFY,
    fake_matrix::TOKEN,
];

pub const MAIL_PATH: &str = "/gmail/v1/users/me/messages/send";
pub const MAIL: &str = r#"{"raw":"VG86IGJvYkBleGFtcGxlLmNvbQ0KU3ViamVjdDogUXVhcnRlcmx5IG51bWJlcnMNCg0KSGkgQm9iIQ"}"#;

pub const MAIL_RULE: &str = r#"
[[rules]]
name = "sending mail needs a human"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/gmail/v1/users/*/messages/send"]
action = "approve"
approvers = ["owner"]
grant = "15m"
"#;

pub const DEPLOY_RULE: &str = r#"
[[rules]]
name = "deploys need two"
hosts = ["localhost"]
paths = ["/deploy"]
action = "approve"
approvers = ["senior"]
quorum = 2
"#;

pub fn telegram_channel(tg: &FakeTelegram) -> String {
    format!(
        "[channels.telegram]\nbot_token = \"env:TG_TOKEN\"\napi_url = \"{}\"\n\n",
        tg.base
    )
}

/// Slack over Socket Mode (app token).
pub fn slack_socket(slack: &fake_slack::Fake) -> String {
    format!(
        "[channels.slack]\nbot_token = \"env:SLACK_BOT\"\napp_token = \"env:SLACK_APP\"\napi_url = \"{}\"\n\n",
        slack.api_base()
    )
}

/// Slack over HTTP interactivity (signing secret, no app token).
pub fn slack_http(slack: &fake_slack::Fake) -> String {
    format!(
        "[channels.slack]\nbot_token = \"env:SLACK_BOT\"\nsigning_secret = \"env:SLACK_SIGNING\"\napi_url = \"{}\"\n\n",
        slack.api_base()
    )
}

pub fn webhook_channel(url: &str) -> String {
    format!("[channels.webhook]\nurl = \"{url}\"\nsecret = \"env:WEBHOOK_SECRET\"\n\n")
}

/// A running gateway: agent "mailbot" holding the gmail secret, `people`, `channels`, `rules`.
pub fn gateway(up: &Upstream, people: &str, channels: &str, rules: &str) -> Gateway {
    gateway_env(up, people, channels, rules, &[])
}

/// [`gateway`] with more environment for the channels (values built at run time).
pub fn gateway_env(up: &Upstream, people: &str, channels: &str, rules: &str, more: &[(&str, &str)]) -> Gateway {
    let config = format!(
        r#"
[[agents]]
name = "mailbot"
secrets = ["gmail"]

[secrets.gmail]
hosts = ["localhost"]
header = "Authorization"
format = "Bearer {{secret}}"
placeholder = "airlock-gmail"

[approvals]
max_body = 1048576

{people}
{channels}
{rules}
"#
    );
    let env: Vec<(&str, &str)> = ENV.iter().chain(more).copied().collect();
    Gateway::start_env(&[up], &config, &[("gmail", REAL)], &["mailbot"], &env)
}

/// The agent's request, through the proxy with the placeholder credential; runs until the
/// gateway answers (it is held meanwhile). Aborting the handle hangs up.
pub fn send(gw: &Gateway, port: u16, path: &str, content_type: &str, body: Vec<u8>) -> JoinHandle<reqwest::Response> {
    let sent = request(gw, port, path, content_type, body).send();
    tokio::spawn(async move { sent.await.unwrap() })
}

/// [`send`], for a request that may get no answer (its gateway is killed while holding it).
pub fn try_send(
    gw: &Gateway,
    port: u16,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> JoinHandle<reqwest::Result<reqwest::Response>> {
    tokio::spawn(request(gw, port, path, content_type, body).send())
}

fn request(gw: &Gateway, port: u16, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    gw.client("mailbot")
        .post(format!("https://localhost:{port}{path}"))
        .bearer_auth("airlock-gmail")
        .header("content-type", content_type)
        .body(body)
}

/// The agent's request was refused because `by` denied it, and nothing reached the upstream.
pub async fn assert_denied(agent: JoinHandle<reqwest::Response>, up: &Upstream, by: &str) {
    let r = agent.await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    let reason = body["airlock"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains(&format!("denied by {by}")), "{body}");
    assert!(!up.contacted());
}

/// A card's buttons, checked to be ours: one well-formed signed token per decision, all for
/// approval `id`, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub approve: String,
    pub deny: String,
    pub grant: Option<String>,
}

pub fn tokens_for(id: &str, found: Vec<String>) -> Tokens {
    let mut by: Vec<(Decision, String)> = Vec::new();
    for t in found {
        assert!(t.len() <= airlock_channels::token::MAX_LEN, "token too long: {t}");
        let c = Claims::parse(&t).unwrap_or_else(|e| panic!("{t:?} is not a button token: {e}"));
        assert_eq!(c.id, id, "a button for another approval: {t}");
        assert!(
            !by.iter().any(|(d, _)| *d == c.decision),
            "two buttons for {:?}",
            c.decision
        );
        by.push((c.decision, t));
    }
    let get = |d: Decision| by.iter().find(|(x, _)| *x == d).map(|(_, t)| t.clone());
    let t = Tokens {
        approve: get(Decision::Approve).expect("an approve button"),
        deny: get(Decision::Deny).expect("a deny button"),
        grant: get(Decision::Grant),
    };
    assert_eq!(by.len(), 2 + usize::from(t.grant.is_some()));
    t
}

/// The callback_data of every inline keyboard button, row by row.
pub fn tg_buttons(markup: &Value) -> Vec<String> {
    markup["inline_keyboard"]
        .as_array()
        .expect("an inline keyboard")
        .iter()
        .flat_map(|row| row.as_array().expect("a keyboard row").clone())
        .map(|b| b["callback_data"].as_str().expect("callback_data").to_string())
        .collect()
}

/// Waits for the card sent to `chat` and returns the sendMessage body.
pub async fn tg_card(tg: &FakeTelegram, chat: &str) -> Value {
    let to = |b: &Value| b["chat_id"] == chat;
    tg.wait_for(&format!("a card for {chat}"), |calls| {
        calls.iter().any(|(m, b)| m == "sendMessage" && to(b))
    })
    .await;
    tg.calls("sendMessage").into_iter().find(to).unwrap()
}

/// A click by Telegram user `user` (through getUpdates); returns answerCallbackQuery's body.
pub async fn tg_click(tg: &FakeTelegram, user: i64, token: &str) -> Value {
    let cq = format!("cq{}", tg.push_click(user, token));
    let is = |b: &Value| b["callback_query_id"] == cq.as_str();
    tg.wait_for(&format!("the answer to {cq}"), |calls| {
        calls.iter().any(|(m, b)| m == "answerCallbackQuery" && is(b))
    })
    .await;
    tg.calls("answerCallbackQuery").into_iter().find(is).unwrap()
}

/// Telegram HTML as the user sees it (the fake's strict parser must accept it).
pub fn tg_plain(html: &str) -> String {
    fake_tg::tg_html::parse(html)
        .unwrap_or_else(|e| panic!("Telegram would refuse: {e}\n{html}"))
        .text
}

/// (action_id, value) of every button in a Block Kit message.
pub fn slack_buttons(msg: &Value) -> Vec<(String, String)> {
    fake_slack::objects_of(&msg["blocks"], "button")
        .iter()
        .map(|b| {
            (
                b["action_id"].as_str().unwrap_or_default().to_string(),
                b["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The tokens on a Slack card, checked to be ours and on our action ids.
pub fn slack_tokens(id: &str, msg: &Value) -> Tokens {
    let buttons = slack_buttons(msg);
    let t = tokens_for(id, buttons.iter().map(|(_, v)| v.clone()).collect());
    let mut want = vec![
        ("airlock_approve".to_string(), t.approve.clone()),
        ("airlock_deny".to_string(), t.deny.clone()),
    ];
    if let Some(g) = &t.grant {
        want.push(("airlock_grant".to_string(), g.clone()));
    }
    assert_eq!(buttons, want);
    assert_eq!(fake_slack::objects_of(&msg["blocks"], "actions").len(), 1);
    t
}

/// Waits for the Slack card (conversations.open then chat.postMessage) and returns the post.
pub async fn slack_card(slack: &mut fake_slack::Fake) -> Value {
    slack
        .wait_until("chat.postMessage", |f| !f.calls("chat.postMessage").is_empty())
        .await;
    slack.calls("chat.postMessage").remove(0)
}

/// The replica of `c` that took the store's feed lock (it logs so; a log line is nothing to
/// await, so this polls it, for at most 5 s).
pub async fn feed_leader(c: &crate::support::replicas::Cluster) -> usize {
    for _ in 0..100 {
        if let Some(i) = (0..c.len()).find(|&i| c[i].logs().contains("now reads the platforms' feeds")) {
            return i;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no replica reads the feeds");
}

/// Fails naming `what` if any credential shows in `text`.
pub fn assert_no_credential(what: &str, text: &str) {
    for c in CREDENTIALS {
        assert!(!text.contains(c), "{what} shows a credential ({}…)", &c[..8]);
    }
}
