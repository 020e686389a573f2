//! The dashboard over plain HTTP: sign-in, cookies, CSRF, redirects, headers, and the
//! answers for people who may not act.

mod common;

use common::*;

#[test]
fn passwords_hash_to_salted_argon2id() {
    let a = airlock_web::dashboard::hash_password("pw").unwrap();
    let b = airlock_web::dashboard::hash_password("pw").unwrap();
    assert!(a.starts_with("$argon2id$"), "{a}");
    assert_ne!(a, b, "every hash has its own salt");
}

#[tokio::test]
async fn unauthenticated_requests_go_to_sign_in_or_are_refused() {
    let env = env().await;
    let res = http().get(env.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/dashboard");
    for path in [
        "/dashboard",
        "/dashboard/history",
        "/dashboard/grants",
        "/dashboard/events",
        "/dashboard/fragment/pending",
        "/dashboard/approvals/abc",
    ] {
        let res = http().get(env.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/dashboard/login", "{path}");
    }
    // A made-up cookie is no session.
    let (status, _) = get(&env, "/dashboard", Some("airlock_session=forged")).await;
    assert_eq!(status, 303);
    for path in [
        "/dashboard/approvals/abc/vote",
        "/dashboard/grants/abc/revoke",
        "/dashboard/logout",
    ] {
        let res = post(&env, path, None, &[("csrf", "x"), ("decision", "approve")]).await;
        assert_eq!(res.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_and_only_secure_over_https() {
    let env = env().await;
    let form = [("person", "alice"), ("password", PASSWORD)];
    let res = http()
        .post(env.url("/dashboard/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/dashboard");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("airlock_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http on loopback: {cookie}");
    // The token is 32 random bytes, and only its SHA-256 is stored.
    let token = cookie.split(';').next().unwrap().trim_start_matches("airlock_session=");
    assert_eq!(token.len(), 43);
    let now = airlock_gateway::now_ms() as i64;
    assert!(env.store.session(token.as_bytes(), now).await.unwrap().is_none());
    let hash = airlock_gateway::token_hash(token);
    let row = env
        .store
        .session(&hash, now)
        .await
        .unwrap()
        .expect("session stored by hash");
    assert_eq!(row.person, "alice");
    let hours = (row.expires_ms - now) as f64 / 3_600_000.0;
    assert!((11.9..=12.0).contains(&hours), "{hours}");

    let res = http()
        .post(env.url("/dashboard/login"))
        .header("x-forwarded-proto", "https")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(res.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn failed_sign_ins_all_look_the_same() {
    let env = env().await;
    // eve has a password in the store but is not in [people]: she may not sign in either.
    let phc = airlock_web::dashboard::hash_password(PASSWORD).unwrap();
    env.store.set_password("eve", &phc, 0).await.unwrap();
    let mut answers = Vec::new();
    for (person, pw) in [("alice", "wrong"), ("nobody", PASSWORD), ("eve", PASSWORD), ("", "")] {
        let res = post(&env, "/dashboard/login", None, &[("person", person), ("password", pw)]).await;
        assert_eq!(res.status(), 401, "{person}");
        assert!(res.headers().get("set-cookie").is_none());
        let page = res.text().await.unwrap();
        assert!(page.contains("wrong person or password"), "{person}");
        // The pages differ only by their CSP nonce.
        let at = page.find("nonce=\"").unwrap();
        answers.push(format!("{}{}", &page[..at], &page[at + 7 + 43..]));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn votes_need_the_sessions_csrf_token() {
    let env = env().await;
    let (id, _verdict) = env.hold(request(&["owner"], None, "hello")).await;
    let (cookie, csrf) = sign_in(&env, "alice").await;
    assert_eq!(csrf.len(), 43);
    let path = format!("/dashboard/approvals/{id}/vote");
    let wrong = format!("{}x", &csrf[..42]);
    for form in [
        vec![("decision", "approve")],
        vec![("decision", "approve"), ("csrf", "")],
        vec![("decision", "approve"), ("csrf", wrong.as_str())],
    ] {
        let res = post(&env, &path, Some(&cookie), &form).await;
        assert_eq!(res.status(), 403, "{form:?}");
        assert!(res.text().await.unwrap().contains("CSRF token is missing or wrong"));
    }
    // Not a form at all.
    let res = http()
        .post(env.url(&path))
        .header("cookie", &cookie)
        .body("{\"decision\":\"approve\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Another site's page posting with the right token is refused too.
    let res = http()
        .post(env.url(&path))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("decision", "approve"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let v = env.hub().get(&id).await.unwrap().unwrap();
    assert!(v.status.is_open() && v.votes.is_empty(), "nothing changed");

    // With the token, from this origin, the vote counts.
    let res = http()
        .post(env.url(&path))
        .header("cookie", &cookie)
        .header("origin", &env.base)
        .form(&[("decision", "approve"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Approved by alice"));
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_no_store() {
    let env = env().await;
    let (cookie, _) = sign_in(&env, "alice").await;
    let res = http()
        .get(env.url("/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'nonce-",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert!(page.contains(&format!("<script nonce=\"{nonce}\">")));
    // The sign-in page and redirects get the headers too.
    let res = http().get(env.url("/dashboard/login")).send().await.unwrap();
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let res = http().get(env.url("/dashboard")).send().await.unwrap();
    assert!(res.headers().contains_key("content-security-policy"));
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "bob").await;
    assert_eq!(post(&env, "/dashboard/logout", Some(&cookie), &[]).await.status(), 403);
    let res = post(&env, "/dashboard/logout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert!(res.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (status, _) = get(&env, "/dashboard", Some(&cookie)).await;
    assert_eq!(status, 303, "the old cookie no longer signs in");
}

#[tokio::test]
async fn odd_input_gets_answers_not_panics() {
    let env = env().await;
    let (cookie, csrf) = sign_in(&env, "alice").await;
    let (status, page) = get(&env, "/dashboard/approvals/%E2%80%AE%3Cscript%3E", Some(&cookie)).await;
    assert_eq!(status, 404);
    assert!(!page.contains('\u{202E}') && !page.contains("<script>"), "{page}");
    let res = post(
        &env,
        "/dashboard/approvals/nope/vote",
        Some(&cookie),
        &[("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    assert_eq!(res.status(), 404);
    let (id, _verdict) = env.hold(request(&["owner"], None, "x")).await;
    let path = format!("/dashboard/approvals/{id}/vote");
    let res = post(&env, &path, Some(&cookie), &[("csrf", &csrf), ("decision", "maybe")]).await;
    assert_eq!(res.status(), 400);
    // A grant where none is offered is refused with the hub's reason.
    let res = post(&env, &path, Some(&cookie), &[("csrf", &csrf), ("decision", "grant")]).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("grants are not offered"));
    let res = post(&env, "/dashboard/grants/nope/revoke", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 404);
    // A decided request takes no more votes.
    let ok = post(&env, &path, Some(&cookie), &[("csrf", &csrf), ("decision", "deny")]).await;
    assert_eq!(ok.status(), 200);
    let again = post(&env, &path, Some(&cookie), &[("csrf", &csrf), ("decision", "approve")]).await;
    assert_eq!(again.status(), 409);
    let (status, page) = get(&env, "/dashboard/history", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Denied by alice"), "{page}");
}

#[tokio::test]
async fn without_approvals_the_pages_say_so() {
    let env = env_without_hub().await;
    for path in [
        "/dashboard",
        "/dashboard/login",
        "/dashboard/history",
        "/dashboard/grants",
    ] {
        let (status, page) = get(&env, path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(page.contains("Approvals are not configured"), "{path}");
    }
    let res = post(
        &env,
        "/dashboard/login",
        None,
        &[("person", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn after_voting_the_buttons_give_way_to_the_vote() {
    let env = env().await;
    let mut req = request(&["owner", "senior"], None, "two must agree");
    req.rules[0].spec.quorum = 2;
    let (id, _verdict) = env.hold(req).await;
    let (cookie, csrf) = sign_in(&env, "bob").await;
    let path = format!("/dashboard/approvals/{id}");
    let (_, page) = get(&env, &path, Some(&cookie)).await;
    assert_eq!(page.matches("class=\"vote\"").count(), 2);
    let res = post(
        &env,
        &format!("{path}/vote"),
        Some(&cookie),
        &[("csrf", &csrf), ("decision", "approve")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("Your vote counted (1 approval so far)"), "{page}");
    assert!(page.contains("You voted to approve this request."), "{page}");
    assert!(page.contains("Waiting: 1 of 2 approvals (bob)"), "{page}");
    assert_eq!(page.matches("class=\"vote\"").count(), 0);
    let (_, list) = get(&env, "/dashboard/fragment/pending", Some(&cookie)).await;
    assert!(list.contains("Waiting: 1 of 2 approvals (bob)"), "{list}");
}

/// A flood of newer held requests cannot push an older one out of sight: the list runs oldest
/// first, and past its length a line says how many more are waiting.
#[tokio::test]
async fn the_oldest_pending_request_stays_listed_under_a_flood() {
    let env = env().await;
    let mut ids = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..201 {
        let (id, verdict) = env.hold(request(&["owner"], None, &format!("request {i}"))).await;
        ids.push(id);
        waiting.push(verdict);
    }
    let (cookie, _) = sign_in(&env, "alice").await;
    for path in ["/dashboard", "/dashboard/fragment/pending"] {
        let (status, page) = get(&env, path, Some(&cookie)).await;
        assert_eq!(status, 200);
        let listed = |id: &str| page.contains(&format!("data-id=\"{id}\""));
        assert!(listed(&ids[0]), "{path}: the oldest pending request is not listed");
        assert_eq!(ids.iter().filter(|id| listed(id)).count(), 200, "{path}");
        assert!(
            page.contains("1 more pending request is not shown here"),
            "{path}: no word of the request left out"
        );
    }
}

/// The approval page shows a compressed or not-quite-UTF-8 body whole, decoded and escaped,
/// with its size as sent: a recipient 20 KB in is in plain sight.
#[tokio::test]
async fn the_approval_page_shows_decoded_bodies_whole() {
    use std::io::Write;
    const HIDDEN: &str = "mallory@evil.example";
    let mut plain = br#"{"to":"alice@example.com","note":"caf"#.to_vec();
    plain.extend(std::iter::repeat_n(b'.', 20 * 1024));
    plain.extend_from_slice(format!(r#"<b>","bcc":"{HIDDEN}"}}"#).as_bytes());
    let mut latin1 = plain.clone();
    latin1.insert(br#"{"to":"alice@example.com","note":"caf"#.len(), 0xe9);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let mut br = Vec::new();
    brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
        .write_all(&plain)
        .unwrap();
    let cases = [
        ("", latin1),
        ("gzip", gz.finish().unwrap()),
        ("br", br),
        ("zstd", zstd::stream::encode_all(&plain[..], 3).unwrap()),
    ];
    let env = env().await;
    let (cookie, _) = sign_in(&env, "alice").await;
    for (encoding, body) in cases {
        let mut req = request(&["owner"], None, "");
        req.held.headers = vec![("content-type".into(), b"application/json".to_vec())];
        if !encoding.is_empty() {
            req.held
                .headers
                .push(("content-encoding".into(), encoding.as_bytes().to_vec()));
        }
        let size = body.len();
        req.held.body = bytes::Bytes::from(body);
        let (id, _verdict) = env.hold(req).await;
        let (status, page) = get(&env, &format!("/dashboard/approvals/{id}"), Some(&cookie)).await;
        assert_eq!(status, 200);
        assert!(
            page.contains(&format!("&quot;bcc&quot;: &quot;{HIDDEN}&quot;")),
            "{encoding:?}: hidden part missing"
        );
        assert!(page.contains("&lt;b&gt;"), "{encoding:?}: the body is escaped");
        let want = if encoding.is_empty() {
            assert!(page.contains("caf&lt;0xE9&gt;"), "the invalid byte is marked");
            format!("{size} bytes (json)")
        } else {
            format!(
                "{size} bytes as sent ({encoding}), {} bytes decoded (json)",
                plain.len()
            )
        };
        assert!(page.contains(&want), "{encoding:?}: no {want:?} on the page");
    }
}
