//! The dashboard in a real headless Chromium (chromedriver over WebDriver). These tests never
//! skip: without chromium and chromium-driver they fail and say what to install.

mod common;

use airlock_approvals::Verdict;
use airlock_channels::token::Decision;
use common::*;
use fantoccini::{Client, Locator};

async fn signed_in(c: &Client, env: &Env, person: &str) {
    browser_sign_in(c, env, person, PASSWORD).await;
    assert_eq!(wait_text(c, "#person").await, person);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_a_wrong_password_and_admits_the_right_one() {
    with_browser(|c| async move {
        let env = env().await;
        browser_sign_in(&c, &env, "alice", "not her password").await;
        assert_eq!(wait_text(&c, "#message").await, "wrong person or password");
        assert_eq!(c.current_url().await.unwrap().path(), "/dashboard/login");
        // Someone who does not exist gets the very same answer.
        browser_sign_in(&c, &env, "nobody", PASSWORD).await;
        assert_eq!(wait_text(&c, "#message").await, "wrong person or password");

        signed_in(&c, &env, "alice").await;
        assert_eq!(c.current_url().await.unwrap().path(), "/dashboard");
        assert!(wait_text(&c, "header").await.contains("Signed in as alice"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_request_appears_without_reloading() {
    with_browser(|c| async move {
        let env = env().await;
        signed_in(&c, &env, "alice").await;
        assert!(wait_text(&c, "#pending").await.contains("Nothing is waiting"));
        // Marks this document: a reload would lose it.
        c.execute("window.__same_page = true; return null;", vec![])
            .await
            .unwrap();

        let (id, _verdict) = env.hold(request(&["owner"], None, "hello")).await;
        let item = wait_text(&c, &format!("#pending li.approval[data-id=\"{id}\"]")).await;
        assert!(item.contains("agent mailbot"), "{item}");
        assert!(item.contains("POST api.example.com/v1/notes"), "{item}");
        assert!(item.contains("Waiting: 0 of 1 approvals"), "{item}");
        assert!(item.contains("you may decide"), "{item}");
        let same = c.execute("return window.__same_page === true;", vec![]).await.unwrap();
        assert_eq!(same, serde_json::json!(true), "the page was reloaded");
        // The item links to the full view.
        c.find(Locator::Css(&format!("li.approval[data-id=\"{id}\"] a.title")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "#approval").await;
        assert_eq!(
            c.current_url().await.unwrap().path(),
            format!("/dashboard/approvals/{id}")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_body_is_shown_and_approve_releases_the_request() {
    with_browser(|c| async move {
        let env = env().await;
        // 300 lines: more than the list view's 200-line cut.
        let body: String = (1..=300).map(|i| format!("line {i:04} of the body\n")).collect();
        let (id, verdict_task) = env.hold(request(&["owner"], None, &body)).await;
        signed_in(&c, &env, "alice").await;
        c.goto(&env.url(&format!("/dashboard/approvals/{id}"))).await.unwrap();
        let shown = wait_text(&c, "pre.body").await;
        for i in [1, 150, 201, 300] {
            assert!(shown.contains(&format!("line {i:04} of the body")), "line {i} missing");
        }
        assert_eq!(count(&c, "p.cut").await, 0, "the full view must not cut the body");

        c.find(Locator::Id("vote-approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let msg = wait_text(&c, "#message").await;
        assert!(msg.contains("the request is approved"), "{msg}");
        assert_eq!(
            verdict(verdict_task).await,
            Verdict::Approved {
                by: vec!["alice".into()]
            }
        );
        let card = wait_text(&c, "#approval").await;
        assert!(card.contains("Approved by alice"), "{card}");
        // The result page puts the address back on the full view: a reload never re-votes.
        assert_eq!(
            c.current_url().await.unwrap().path(),
            format!("/dashboard/approvals/{id}")
        );
        assert_eq!(count(&c, "form.vote").await, 0, "no buttons once decided");
        let votes = wait_text(&c, "#votes").await;
        assert!(votes.contains("alice") && votes.contains("dashboard"), "{votes}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_and_a_grant_that_is_then_revoked() {
    with_browser(|c| async move {
        let env = env().await;
        signed_in(&c, &env, "alice").await;

        let (denied, denied_task) = env.hold(request(&["owner"], Some(900), "first")).await;
        c.goto(&env.url(&format!("/dashboard/approvals/{denied}")))
            .await
            .unwrap();
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Id("vote-deny"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert!(wait_text(&c, "#message").await.contains("the request is denied"));
        assert_eq!(verdict(denied_task).await, Verdict::Denied { by: "alice".into() });

        let (granted, granted_task) = env.hold(request(&["owner"], Some(900), "second")).await;
        c.goto(&env.url(&format!("/dashboard/approvals/{granted}")))
            .await
            .unwrap();
        let button = c
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id("vote-grant"))
            .await
            .unwrap();
        assert_eq!(button.text().await.unwrap(), "Approve for 15 min");
        button.click().await.unwrap();
        assert!(wait_text(&c, "#message").await.contains("the request is approved"));
        assert_eq!(
            verdict(granted_task).await,
            Verdict::Approved {
                by: vec!["alice".into()]
            }
        );
        let rules = vec!["mail".to_string()];
        let now = airlock_gateway::now_ms();
        assert!(env.hub().grant_for("mailbot", &rules, "api.example.com", now).is_some());

        c.goto(&env.url("/dashboard/grants")).await.unwrap();
        let row = wait_text(&c, "#grants tr.grant").await;
        assert!(
            row.contains("mailbot") && row.contains("api.example.com") && row.contains("alice"),
            "{row}"
        );
        c.find(Locator::Css("#grants tr.grant button.revoke"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert!(wait_text(&c, "#grants p.empty").await.contains("No active grants"));
        assert_eq!(env.hub().grant_for("mailbot", &rules, "api.example.com", now), None);
        assert!(env.hub().grants().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_without_the_role_sees_no_buttons_and_cannot_vote() {
    with_browser(|c| async move {
        let env = env().await;
        let (id, _verdict) = env.hold(request(&["owner"], Some(900), "needs an owner")).await;
        signed_in(&c, &env, "mallory").await;
        c.goto(&env.url(&format!("/dashboard/approvals/{id}"))).await.unwrap();
        assert!(wait_text(&c, "#approval").await.contains("needs an owner"));
        assert!(wait_text(&c, "#not-eligible").await.contains("do not hold a role"));
        assert_eq!(count(&c, "form.vote").await, 0);
        assert_eq!(count(&c, "button").await, 1, "only Sign out");

        // A hand-made POST with her own valid session and CSRF token is refused by the hub.
        let (cookie, csrf) = sign_in(&env, "mallory").await;
        let res = post(
            &env,
            &format!("/dashboard/approvals/{id}/vote"),
            Some(&cookie),
            &[("csrf", &csrf), ("decision", "approve")],
        )
        .await;
        assert_eq!(res.status(), 403);
        let page = res.text().await.unwrap();
        assert!(
            page.contains("you do not hold a role that may decide this request"),
            "{page}"
        );
        let v = env.hub().get(&id).await.unwrap().unwrap();
        assert!(
            v.status.is_open() && v.votes.is_empty(),
            "the request must still be pending"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_view_follows_other_approvers_live() {
    with_browser(|c| async move {
        let env = env().await;
        let mut req = request(&["owner", "senior"], None, "two people must agree");
        req.rules[0].spec.quorum = 2;
        let (id, verdict_task) = env.hold(req).await;
        signed_in(&c, &env, "alice").await;
        let item = wait_text(&c, &format!("#pending li.approval[data-id=\"{id}\"]")).await;
        assert!(item.contains("Waiting: 0 of 2 approvals"), "{item}");
        c.goto(&env.url(&format!("/dashboard/approvals/{id}"))).await.unwrap();
        assert!(wait_text(&c, "#votes").await.contains("No votes yet"));
        c.execute("window.__before = true; return null;", vec![]).await.unwrap();

        // bob approves elsewhere; alice's open page follows without the test reloading it.
        let counted = env.hub().vote(&id, "bob", Decision::Approve, "slack").await.unwrap();
        assert_eq!(counted.state, "pending");
        let votes = wait_text(&c, "table#votes").await;
        assert!(votes.contains("bob") && votes.contains("slack"), "{votes}");
        let marker = c.execute("return window.__before === true;", vec![]).await.unwrap();
        assert_eq!(marker, serde_json::json!(false), "the page should have reloaded itself");
        assert!(
            wait_text(&c, "#approval")
                .await
                .contains("Waiting: 1 of 2 approvals (bob)")
        );

        c.find(Locator::Id("vote-approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert!(wait_text(&c, "#message").await.contains("the request is approved"));
        assert_eq!(
            verdict(verdict_task).await,
            Verdict::Approved {
                by: vec!["bob".into(), "alice".into()]
            }
        );
    })
    .await;
}

const HOSTILE: &str = "</pre><script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">\n\
<form action=\"/dashboard/approvals/x/vote\" method=\"post\"><button>Approve</button></form>\n\
<!here> pay\u{202E}lmx.exe zero\u{200B}width\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_body_is_shown_as_text_and_never_runs() {
    with_browser(|c| async move {
        let env = env().await;
        let mut req = request(&["owner"], Some(900), HOSTILE);
        req.held.agent = "bot<img src=x onerror=\"window.__pwned=3\">\u{202E}".into();
        req.held.target = "/x<script>window.__pwned=4</script>\u{202E}".into();
        let (id, _verdict) = env.hold(req).await;
        signed_in(&c, &env, "alice").await;

        for path in ["/dashboard".to_string(), format!("/dashboard/approvals/{id}")] {
            c.goto(&env.url(&path)).await.unwrap();
            wait_text(&c, "main").await;
            let pwned = c.execute("return typeof window.__pwned;", vec![]).await.unwrap();
            assert_eq!(pwned, serde_json::json!("undefined"), "script ran on {path}");
            let source = c.source().await.unwrap();
            assert!(!source.contains('\u{202E}'), "raw U+202E on {path}");
            assert!(!source.contains('\u{200B}'), "raw U+200B on {path}");
            assert_eq!(count(&c, "main script").await, 0, "{path}");
            assert_eq!(count(&c, "main img").await, 0, "{path}");
        }
        // On the full view: exactly the server's own forms (Approve, Approve for 15 min, Deny)
        // plus Sign out, and the hostile text shown as text.
        assert_eq!(count(&c, "form").await, 4);
        assert_eq!(count(&c, "button").await, 4);
        assert_eq!(count(&c, "form.vote").await, 3);
        let body = wait_text(&c, "pre.body").await;
        assert!(body.contains("</pre><script>window.__pwned=1</script>"), "{body}");
        assert!(body.contains("<form action="), "{body}");
        assert!(body.contains("<!here>"), "{body}");
        assert!(body.contains("pay<U+202E>lmx.exe zero<U+200B>width"), "{body}");
        let card = wait_text(&c, "#approval").await;
        assert!(
            card.contains("bot<img src=x onerror=\"window.__pwned=3\"><U+202E>"),
            "{card}"
        );
    })
    .await;
}
