//! Email end to end: a real `airlock serve` mails each eligible approver a text + HTML card
//! through a local SMTP server that requires STARTTLS and AUTH; the test reads the message,
//! parses it with Python's `email` package, and follows its links with a real HTTP client, as
//! a browser behind `base_url`'s reverse proxy would. A GET never votes; the confirming POST
//! votes once, only with the CSRF cookie its page set, and only for the link's own person.
mod e2e;
mod support;

use e2e::fake_smtp::{FakeSmtp, Mail};
use e2e::*;
use reqwest::header;
use serde_json::Value;
use support::*;

const BASE: &str = "https://airlock.example.test";

fn email_channel(smtp: &FakeSmtp, ca: &std::path::Path) -> String {
    format!(
        "[channels.email]\nsmtp = \"127.0.0.1:{}\"\nsecurity = \"starttls\"\nusername = \"{}\"\n\
         password = \"env:SMTP_PASSWORD\"\nfrom = \"airlock <airlock@example.test>\"\nbase_url = \"{BASE}\"\nca = \"{}\"\n\n",
        smtp.port,
        e2e::fake_smtp::USER,
        ca.display()
    )
}

fn person(name: &str, role: &str, email: &str) -> String {
    format!("[people.{name}]\nroles = [\"{role}\"]\nemail = \"{email}\"\n\n")
}

struct Setup {
    smtp: FakeSmtp,
    up: Upstream,
    gw: Gateway,
    _ca: tempfile::NamedTempFile,
}

async fn start(people: &str, rules: &str) -> Setup {
    let smtp = FakeSmtp::start().await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &smtp.ca_pem).unwrap();
    let up = upstream(true).await;
    let gw = gateway(&up, people, &email_channel(&smtp, ca.path()), rules);
    Setup { smtp, up, gw, _ca: ca }
}

/// The message as a mail client sees it: headers decoded, parts by type.
fn parse(m: &Mail) -> Value {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &m.data).unwrap();
    let script = r#"
import email, json, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
out = {"subject": str(m["subject"]), "from": str(m["from"]), "to": str(m["to"]),
       "type": m.get_content_type(), "parts": {}}
for p in m.walk():
    if p.get_content_maintype() == "text":
        out["parts"][p.get_content_type()] = p.get_content()
print(json.dumps(out))
"#;
    let (ok, out) = python(script, &[f.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

/// The link the text part gives for `label` ("Approve:", "Deny:"), as the control listener
/// serves it (the reverse proxy's part).
fn link(gw: &Gateway, text: &str, label: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in {text}"));
    let url = line[label.len()..].trim();
    let rest = url
        .strip_prefix(&format!("{BASE}/email/vote?"))
        .unwrap_or_else(|| panic!("{url} is not a landing link"));
    format!("http://{}/email/vote?{rest}", gw.control)
}

fn query(url: &str, key: &str) -> String {
    let q = url.split_once('?').unwrap().1;
    let v = q.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap();
    percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// Opens a link: (status, page, the CSRF cookie it set).
async fn open(url: &str) -> (u16, String, Option<String>) {
    let r = reqwest::get(url).await.unwrap();
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (r.status().as_u16(), r.text().await.unwrap(), cookie)
}

/// The hidden `csrf` field of a landing page's form.
fn csrf_field(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

/// Submits the page's form as a browser would (same origin), with `cookie` if given.
async fn confirm(gw: &Gateway, url: &str, csrf: &str, cookie: Option<&str>, site: &str) -> (u16, String) {
    let form = format!(
        "a={}&t={}&csrf={csrf}",
        percent_encoding::utf8_percent_encode(&query(url, "a"), percent_encoding::NON_ALPHANUMERIC),
        query(url, "t"),
    );
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/email/vote", gw.control))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", site)
        .body(form);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_a_link_shows_and_only_its_confirmed_post_votes_once() {
    let people = format!(
        "{}{}",
        person("alice", "owner", "alice@example.com"),
        person("mallory", "intern", "mallory@example.com")
    );
    let Setup { smtp, up, mut gw, _ca } = start(&people, MAIL_RULE).await;
    let mut events = Events::open(&gw).await;
    let agent = send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    let id = events.next("pending").await;

    let mail = smtp.mail_to("alice@example.com").await;
    assert_eq!(mail.from, "airlock@example.test");
    let m = parse(&mail);
    assert_eq!(m["type"], "multipart/alternative");
    assert_eq!(m["from"], "airlock <airlock@example.test>");
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .starts_with("[airlock] Approval needed: "),
        "{m}"
    );
    let text = m["parts"]["text/plain"].as_str().unwrap();
    let html = m["parts"]["text/html"].as_str().unwrap();
    assert!(
        text.contains("sending mail needs a human") && text.contains("mailbot"),
        "{text}"
    );
    assert!(html.contains("sending mail needs a human"), "{html}");
    let approve = link(&gw, text, "Approve:");
    let deny = link(&gw, text, "Deny:");
    let t = tokens_for(&id, vec![query(&approve, "t"), query(&deny, "t")]);
    assert_eq!(query(&approve, "a"), "alice@example.com");
    // The HTML part's buttons are the same links.
    assert!(html.contains(&format!("{BASE}/email/vote?a=alice%40example.com&amp;t={}", t.approve)));

    // Opening the link (a mail scanner, a preview, the approver) shows the card and votes nothing.
    for _ in 0..3 {
        let (status, page, cookie) = open(&approve).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Confirm: approve") && page.contains("mailbot"), "{page}");
        assert!(cookie.unwrap().starts_with("airlock_email_csrf="));
    }
    assert!(!up.contacted() && !agent.is_finished(), "a GET voted");
    let (_, page, cookie) = open(&approve).await;
    let (csrf, cookie) = (csrf_field(&page), cookie.unwrap());

    // Another site's form, or a form without the page's cookie, is refused.
    let (status, _) = confirm(&gw, &approve, &csrf, Some(&cookie), "cross-site").await;
    assert_eq!(status, 403);
    let (status, _) = confirm(&gw, &approve, &csrf, None, "same-origin").await;
    assert_eq!(status, 403);
    let (status, _) = confirm(&gw, &approve, "x".repeat(43).as_str(), Some(&cookie), "same-origin").await;
    assert_eq!(status, 403);
    // Alice's link edited to name Mallory (no approver role) or a stranger: refused.
    for who in ["mallory%40example.com", "eve%40example.com"] {
        let edited = approve.replace("alice%40example.com", who);
        let (status, page, _) = open(&edited).await;
        assert_eq!(status, 403, "{page}");
        assert!(!page.contains("mailbot"), "an edited link shows nothing: {page}");
        let (status, _) = confirm(&gw, &edited, &csrf, Some(&cookie), "same-origin").await;
        assert_eq!(status, 403);
    }
    assert!(!up.contacted() && !agent.is_finished());

    // The page's own form votes, once.
    let (status, page) = confirm(&gw, &approve, &csrf, Some(&cookie), "same-origin").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your vote counted"), "{page}");
    assert_eq!(agent.await.unwrap().status(), 200);
    let seen = up.last();
    assert_eq!(seen.body, MAIL.as_bytes(), "the exact held bytes");
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {REAL}").as_str()));
    let (status, page) = confirm(&gw, &approve, &csrf, Some(&cookie), "same-origin").await;
    assert_eq!(status, 403, "a replayed POST: {page}");
    assert_eq!(up.requests().len(), 1, "forwarded once");

    // Later, any of the links shows the outcome and no form.
    let (status, page, _) = open(&deny).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Approved by alice") && !page.contains("Confirm:"),
        "{page}"
    );

    // Only Alice was mailed; the password never left for anything but AUTH.
    assert!(smtp.mails().iter().all(|m| m.to == ["alice@example.com"]));
    assert!(smtp.violations().is_empty(), "{:?}", smtp.violations());
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for want in [
        "alice voted via email",
        "click by email user eve@example.com refused: not a configured person",
        "mallory via email",
    ] {
        assert!(audit.contains(want), "no {want:?} in the audit log");
    }
    for secret in CREDENTIALS {
        assert!(!audit.contains(secret) && !gw.logs().contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_a_hostile_body_stays_inert_and_a_deny_link_denies() {
    let Setup { smtp, up, gw, _ca } = start(&person("alice", "owner", "alice@example.com"), MAIL_RULE).await;
    let mut events = Events::open(&gw).await;
    let fake = format!("<a href=\"https://evil.example/\">Approve</a> Approve:  {BASE}/email/vote?a=eve%40evil&t=x");
    let mut body =
        format!("[✅ Approve] @everyone <b>x</b> <at>all</at> pay\u{202E}gpj.exe zero\u{200B}width\n{fake}\n");
    for i in 0..10_000 {
        body.push_str(&format!("line {i} <script>alert(1)</script>\n"));
    }
    let agent = send(&gw, up.port, MAIL_PATH, "text/plain", body.into_bytes());
    let id = events.next("pending").await;
    let m = parse(&smtp.mail_to("alice@example.com").await);
    let text = m["parts"]["text/plain"].as_str().unwrap();
    let html = m["parts"]["text/html"].as_str().unwrap();

    // Markup arrives as text; the only links are ours.
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
    assert!(!html.contains("href=\"https://evil.example/\""));
    let hrefs: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(hrefs.len(), 3, "approve, grant, deny: {hrefs:?}");
    assert!(
        hrefs
            .iter()
            .all(|h| h.starts_with(&format!("{BASE}/email/vote?a=alice%40example.com&amp;t={id}.")))
    );
    // Cut with a notice; deceptive characters made visible; body lines quoted as data.
    for part in [text, html] {
        assert!(part.contains("more bytes — full request on the dashboard"), "{part}");
        assert!(part.contains("&lt;U+202E&gt;") || part.contains("<U+202E>"));
        assert!(!part.contains('\u{202E}') && !part.contains('\u{200B}'));
    }
    assert!(text.contains("│ [✅ Approve] @everyone"), "{text}");
    assert!(
        text.lines().filter(|l| l.starts_with("Approve:")).count() == 1,
        "{text}"
    );
    assert!(text.len() < 16 * 1024 && html.len() < 64 * 1024);
    assert!(!m["subject"].as_str().unwrap().contains('\n'));

    // The deny link, confirmed, denies.
    let deny = link(&gw, text, "Deny:");
    let (_, page, cookie) = open(&deny).await;
    assert!(page.contains("Confirm: deny"), "{page}");
    assert!(!page.contains("<script>alert"), "the landing page escapes too");
    let (status, page) = confirm(&gw, &deny, &csrf_field(&page), cookie.as_deref(), "same-origin").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(agent.await.unwrap().status(), 403);
    assert!(!up.contacted());
    assert!(smtp.violations().is_empty(), "{:?}", smtp.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_after_a_crash_the_old_links_count_for_nothing() {
    let Setup { smtp, up, mut gw, _ca } = start(&person("alice", "owner", "alice@example.com"), MAIL_RULE).await;
    let mut events = Events::open(&gw).await;
    let agent = try_send(&gw, up.port, MAIL_PATH, "application/json", MAIL.into());
    events.next("pending").await;
    let text = parse(&smtp.mail_to("alice@example.com").await)["parts"]["text/plain"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, page, cookie) = open(&link(&gw, &text, "Approve:")).await;
    let csrf = csrf_field(&page);

    // A crash: no shutdown path runs; the restarted gateway abandons what was held.
    let mut child = gw.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(agent.await.unwrap().is_err(), "the held request got no answer");
    gw.serve(ENV);
    // The page opened before the crash is submitted after it: refused, nothing forwarded.
    let approve = link(&gw, &text, "Approve:");
    let (status, page) = confirm(&gw, &approve, &csrf, cookie.as_deref(), "same-origin").await;
    assert_eq!(status, 403, "{page}");
    let (status, page, _) = open(&approve).await;
    assert_eq!(status, 200);
    assert!(page.contains("Abandoned") && !page.contains("Confirm:"), "{page}");
    assert!(!up.contacted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_a_link_votes_on_any_replica_and_counts_once() {
    let smtp = FakeSmtp::start().await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &smtp.ca_pem).unwrap();
    let up = upstream(true).await;
    let config = format!(
        "[[agents]]\nname = \"mailbot\"\nsecrets = [\"gmail\"]\n\n[secrets.gmail]\nhosts = [\"localhost\"]\n\
         header = \"Authorization\"\nformat = \"Bearer {{secret}}\"\nplaceholder = \"airlock-gmail\"\n\n\
         [approvals]\nmax_body = 1048576\n\n{}{}{MAIL_RULE}",
        person("alice", "owner", "alice@example.com"),
        email_channel(&smtp, ca.path())
    );
    let mut c = support::replicas::Cluster::start(support::replicas::Options {
        replicas: 2,
        upstreams: &[&up],
        config: &config,
        secrets: &[("gmail", REAL)],
        agents: &["mailbot"],
        env: ENV,
        ..Default::default()
    })
    .await;
    // Held on replica 0; the approver's browser reaches replica 1 (any replica behind base_url).
    let agent = send(&c[0], up.port, MAIL_PATH, "application/json", MAIL.into());
    let text = parse(&smtp.mail_to("alice@example.com").await)["parts"]["text/plain"]
        .as_str()
        .unwrap()
        .to_string();
    let approve = link(&c[1], &text, "Approve:");
    let (status, page, cookie) = open(&approve).await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = confirm(&c[1], &approve, &csrf_field(&page), cookie.as_deref(), "same-origin").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        agent.await.unwrap().status(),
        200,
        "the holder forwards on a vote cast elsewhere"
    );
    assert_eq!(up.requests().len(), 1);
    assert_eq!(up.last().body, MAIL.as_bytes());
    // The same confirmation on the holder counts for nothing.
    let again = link(&c[0], &text, "Approve:");
    let (_, page, cookie) = open(&again).await;
    assert!(
        page.contains("Approved by alice") && !page.contains("Confirm:"),
        "{page}"
    );
    // A well-formed confirmation (field = cookie), replayed on the holder: refused by the hub.
    let cookie = cookie.unwrap();
    let value = cookie.split_once('=').unwrap().1.to_string();
    let (status, page) = confirm(&c[0], &again, &value, Some(&cookie), "same-origin").await;
    assert_eq!(status, 403);
    assert!(page.contains("already"), "{page}");
    assert_eq!(up.requests().len(), 1, "applied once");
    assert!(smtp.violations().is_empty(), "{:?}", smtp.violations());
    c.stop_and_verify(REAL);
}
