//! The card the gateway builds from a held request: digest, path and query, redaction, body
//! views, and no panics on anything an agent can send. Summaries: `card_summaries.rs`.

use airlock_channels::card::{build, digest};
use airlock_channels::render::{html_card, terminal};
use airlock_channels::{BodyKind, Status};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

mod common;

use common::{JSON, card, line, req};

// ---- digest ----

#[test]
fn digest_covers_every_part_of_the_request() {
    let base = req(
        "POST",
        "api.example.com",
        "/v1/x?a=1",
        &[("a", b"1"), ("b", b"2")],
        b"body",
    );
    let d = digest(&base);
    assert_eq!(d.len(), 64);
    assert_eq!(d, digest(&base.clone()), "stable for equal input");

    let mut v = Vec::new();
    let mut m = base.clone();
    m.method = "PUT".into();
    v.push(m);
    let mut m = base.clone();
    m.target = "/v1/x?a=2".into();
    v.push(m);
    let mut m = base.clone();
    m.host = "api.example.org".into();
    v.push(m);
    let mut m = base.clone();
    m.port = 8443;
    v.push(m);
    let mut m = base.clone();
    m.scheme = "http".into();
    v.push(m);
    let mut m = base.clone();
    m.headers[1].1 = b"3".to_vec();
    v.push(m);
    let mut m = base.clone();
    m.headers.swap(0, 1);
    v.push(m);
    let mut m = base.clone();
    m.headers.pop();
    v.push(m);
    let mut m = base.clone();
    m.body = bytes::Bytes::from_static(b"bodY");
    v.push(m);
    let mut m = base.clone();
    m.body = bytes::Bytes::from_static(b"body ");
    v.push(m);
    for (i, m) in v.iter().enumerate() {
        assert_ne!(digest(m), d, "variant {i} must change the digest");
    }
}

#[test]
fn digest_fields_are_length_prefixed() {
    let a = req("POST", "h", "/", &[("ab", b"c")], b"");
    let b = req("POST", "h", "/", &[("a", b"bc")], b"");
    assert_ne!(digest(&a), digest(&b));
    // A header moved into the body, or the method bleeding into the URL.
    let c = req("POST", "h", "/", &[("x", b"y")], b"");
    let d = req(
        "POST",
        "h",
        "/",
        &[],
        b"\x00\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x00\x00\x00\x00\x00\x01y",
    );
    assert_ne!(digest(&c), digest(&d));
    let mut e = req("POS", "h", "/", &[], b"");
    e.scheme = "Thttps".into();
    assert_ne!(digest(&req("POST", "h", "/", &[], b"")), digest(&e));
}

// ---- path, query, headers ----

#[test]
fn path_query_and_headers() {
    let held = req(
        "get",
        "api.example.com",
        "/a%20b/c?q=hello+world&x=%E2%9C%93&flag&&nl=a%0Ab",
        &[
            ("Host", b"api.example.com"),
            ("Connection", b"keep-alive"),
            ("Accept", b"*/*"),
            ("User-Agent", b"bot/1 \xff"),
        ],
        b"",
    );
    let c = card(&held);
    assert_eq!(c.path, "/a%20b/c");
    assert_eq!(
        c.query,
        vec![
            ("q".to_string(), "hello world".to_string()),
            ("x".into(), "✓".into()),
            ("flag".into(), "".into()),
            ("nl".into(), "a b".into()),
        ]
    );
    assert_eq!(
        c.headers,
        vec![
            ("Accept".to_string(), "*/*".to_string()),
            ("User-Agent".into(), "bot/1 \u{fffd}".into())
        ]
    );
    assert_eq!(c.body.kind, BodyKind::Empty);
    assert_eq!(c.summary_title, None);
}

#[test]
fn credentials_never_reach_the_card() {
    let secrets: &[(&str, &[u8])] = &[
        ("Authorization", b"Bearer SECRET-AUTH-1"),
        ("Cookie", b"sid=SECRET-COOKIE-2"),
        ("X-Api-Key", b"SECRET-KEY-3"),
        ("X-Auth-Token", b"SECRET-TOKEN-4"),
        ("X-Session-Id", b"SECRET-SESSION-5"),
        ("X-Hub-Signature-256", b"SECRET-SIG-6"),
        ("Set-Cookie", b"SECRET-7"),
        ("X-Client-Secret", b"SECRET-8"),
        ("x-amz-credential", b"SECRET-9"),
        ("X-Password", b"SECRET-10"),
        ("Content-Type", b"application/json"),
    ];
    let c = card(&req("POST", "api.example.com", "/", secrets, b"{}"));
    let json = serde_json::to_string(&c).unwrap();
    assert!(!json.contains("SECRET"), "{json}");
    assert_eq!(c.headers.iter().filter(|(_, v)| v == "[redacted]").count(), 10);
    assert!(c.headers.contains(&("Content-Type".into(), "application/json".into())));
}

#[test]
fn at_most_thirty_headers_and_a_count_of_the_rest() {
    let names: Vec<String> = (0..40).map(|i| format!("X-H{i}")).collect();
    let headers: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
    let c = card(&req("GET", "h", "/", &headers, b""));
    assert_eq!(c.headers.len(), 31);
    assert_eq!(c.headers[30], ("…".into(), "10 more headers not shown".into()));
}

// ---- bodies ----

#[test]
fn json_is_pretty_and_complete() {
    let body = br#"{"b":1,"a":[true,null],"n":100000000000000000000001,"dup":1,"dup":2}"#;
    let c = card(&req("POST", "api.example.com", "/x", &[("Content-Type", JSON)], body));
    assert_eq!(c.body.kind, BodyKind::Json);
    assert_eq!(c.body.size, body.len());
    assert!(
        c.body.text.starts_with("{\n  \"b\": 1,\n  \"a\": [\n    true,"),
        "{}",
        c.body.text
    );
    assert!(c.body.text.contains("100000000000000000000001"));
    assert!(c.body.text.contains("\"dup\": 1") && c.body.text.contains("\"dup\": 2"));
    assert!(line(&c, "Warning").is_some_and(|w| w.contains("repeats a key")));
}

#[test]
fn form_bodies_are_decoded_lines() {
    let c = card(&req(
        "POST",
        "h",
        "/",
        &[("Content-Type", b"application/x-www-form-urlencoded; charset=utf-8")],
        b"name=J%C3%B6rg+M&amount=10&x=a%0Aadmin+%3D+true",
    ));
    assert_eq!(c.body.kind, BodyKind::Form);
    assert_eq!(c.body.text, "name = Jörg M\namount = 10\nx = a admin = true");
}

#[test]
fn graphql_bodies() {
    let body = br#"{"query":"mutation Del($id: ID!) { deleteRepository(id: $id) }","variables":{"id":"R_1"},"operationName":"Del"}"#;
    let c = card(&req(
        "POST",
        "api.example.com",
        "/graphql",
        &[("Content-Type", JSON)],
        body,
    ));
    assert_eq!(c.body.kind, BodyKind::Graphql);
    assert!(
        c.body
            .text
            .starts_with("mutation Del($id: ID!) { deleteRepository(id: $id) }\n\n{\n  \"variables\": {")
    );
    assert!(c.body.text.contains("\"operationName\": \"Del\""));
    assert_eq!(c.summary_title.as_deref(), Some("GraphQL mutation"));

    let c = card(&req(
        "POST",
        "h",
        "/gql",
        &[("Content-Type", b"application/graphql")],
        b"{ viewer { login } }",
    ));
    assert_eq!(c.body.kind, BodyKind::Graphql);
    assert_eq!(c.body.text, "{ viewer { login } }");

    // A "query" field that is not GraphQL stays JSON.
    let c = card(&req(
        "POST",
        "h",
        "/s",
        &[("Content-Type", JSON)],
        br#"{"query":"cats"}"#,
    ));
    assert_eq!(c.body.kind, BodyKind::Json);
}

#[test]
fn sql_bodies() {
    let c = card(&req(
        "POST",
        "db.example.com",
        "/sql",
        &[("Content-Type", JSON)],
        br#"{"query":"DELETE FROM users\nWHERE id = $1","params":[7]}"#,
    ));
    assert_eq!(c.body.kind, BodyKind::Sql);
    assert_eq!(c.summary_title.as_deref(), Some("SQL statement"));
    assert_eq!(line(&c, "Statement"), Some("DELETE FROM users WHERE id = $1"));
    assert_eq!(line(&c, "Parameters"), Some("[7]"));

    let c = card(&req(
        "POST",
        "h",
        "/",
        &[("Content-Type", b"application/sql")],
        b"drop table x",
    ));
    assert_eq!(
        (c.body.kind, line(&c, "Statement")),
        (BodyKind::Sql, Some("drop table x"))
    );
    let c = card(&req(
        "POST",
        "h",
        "/",
        &[],
        b"  /* hi */ UPDATE accounts SET balance = 0",
    ));
    assert_eq!(c.body.kind, BodyKind::Sql);
    let c = card(&req(
        "POST",
        "h",
        "/",
        &[("Content-Type", JSON)],
        br#"{"statement":"TRUNCATE t"}"#,
    ));
    assert_eq!(line(&c, "Statement"), Some("TRUNCATE t"));
    let c = card(&req("POST", "h", "/", &[], b"hello there"));
    assert_eq!((c.body.kind, c.summary_title.clone()), (BodyKind::Text, None));
}

#[test]
fn binary_bodies_show_hex_and_size() {
    let mut body = vec![0u8, 0xff, 0x1b, b'A'];
    body.extend(std::iter::repeat_n(0x80, 1000));
    let c = card(&req(
        "POST",
        "h",
        "/up",
        &[("Content-Type", b"application/octet-stream")],
        &body,
    ));
    assert_eq!(c.body.kind, BodyKind::Binary);
    assert_eq!(c.body.size, 1004);
    assert!(
        c.body
            .text
            .starts_with("00000000  00 ff 1b 41 80 80 80 80  80 80 80 80 80 80 80 80  |...A............|")
    );
    assert_eq!(c.body.text.lines().count(), 33);
    assert!(
        c.body
            .text
            .contains("492 more bytes not shown as hex (1004 bytes in all)")
    );
}

// ---- never panic ----

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, alphabet: &[u8]) -> Vec<u8> {
        let n = (self.next() % 600) as usize;
        (0..n)
            .map(|_| {
                let r = self.next();
                if r.is_multiple_of(3) {
                    r as u8 >> 1
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect()
    }
}

#[test]
fn never_panics_on_random_bodies() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"{}[]\":,=?&%+-_\\/\r\n \tabcdeBQxyz019=?utf-8?B?query mutation SELECT--/*boundary";
    let types: [&[u8]; 7] = [
        b"application/json",
        b"application/x-www-form-urlencoded",
        b"application/graphql",
        b"message/rfc822",
        b"multipart/related; boundary=b",
        b"text/plain",
        b"\xff\xfe",
    ];
    let targets = [
        "/gmail/v1/users/me/messages/send",
        "/upload/gmail/v1/users/me/messages/send?uploadType=media",
        "/repos/a/b/git/refs/heads/x",
        "/%ff%zz?%%=&=&a=%e2%82",
        "",
    ];
    for i in 0..4000u64 {
        let body = rng.bytes(alphabet);
        let ct = types[i as usize % types.len()];
        let host = ["gmail.googleapis.com", "api.github.com", "x"][i as usize % 3];
        let method = ["POST", "PUT", "PATCH"][(i / 3) as usize % 3];
        let target = targets[(i / 9) as usize % targets.len()];
        let mut held = req(method, host, target, &[("Content-Type", ct)], &body);
        if i % 7 == 0 {
            // Random (lossy) target and header value too, multi-byte characters included.
            let noise = String::from_utf8_lossy(&rng.bytes(alphabet)).into_owned();
            held.target = format!("{}{noise}", ["", "/", "https://", "HTTP://é/", "é?"][i as usize % 5]);
            held.headers.push(("X-Noise".into(), noise.into_bytes()));
        }
        let c = build(&held, "id", vec![], digest(&held), 0, 0, None);
        assert_eq!(c.body.size, body.len());
        if i % 10 == 0 {
            let status = Status::Pending { approved_by: vec![] };
            assert!(!terminal(&c, &status).contains('\x1b'));
            let _ = html_card(&c, &status, i % 20 == 0);
        }
        // Also the Gmail raw shape around random bytes.
        let raw = serde_json::json!({ "raw": URL_SAFE_NO_PAD.encode(&body) }).to_string();
        held.body = bytes::Bytes::from(raw);
        let _ = build(&held, "id", vec![], String::new(), 0, 0, None);
    }
    // Hostile depth is bounded by serde_json's recursion limit.
    let deep = "[".repeat(100_000);
    let c = card(&req("POST", "h", "/", &[("Content-Type", JSON)], deep.as_bytes()));
    assert_eq!(c.body.kind, BodyKind::Text);
}

#[test]
fn hostile_messages_stay_cheap() {
    let started = std::time::Instant::now();
    let mut msg = String::from("To: a@b\r\nSubject: ");
    msg.push_str(&"=?utf-8?Q?x".repeat(100_000));
    msg.push_str("\r\nContent-Type: multipart/mixed; boundary=\"");
    msg.push_str(&"b".repeat(5000));
    msg.push_str("\"\r\n\r\n");
    msg.push_str(&format!("--{}\r\n", "b".repeat(5000)).repeat(200));
    let nested = "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n".repeat(2000);
    for body in [msg, nested] {
        let c = card(&req(
            "POST",
            "gmail.googleapis.com",
            "/upload/gmail/v1/users/me/messages/send",
            &[("Content-Type", b"message/rfc822")],
            body.as_bytes(),
        ));
        assert_eq!(c.summary_title.as_deref(), Some("Send email"));
    }
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[test]
fn absolute_form_targets_keep_only_the_path() {
    let c = card(&req("GET", "h", "HTTPS://h:8443/a/b?x=1", &[], b""));
    assert_eq!((c.path.as_str(), c.query.len()), ("/a/b", 1));
    let c = card(&req("GET", "h", "http://h?x=1", &[], b""));
    assert_eq!((c.path.as_str(), c.query.len()), ("", 1));
    let c = card(&req("GET", "h", "ééééé/x", &[], b""));
    assert_eq!(c.path, "ééééé/x");
}
