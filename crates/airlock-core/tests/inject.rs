use airlock_core::facts::Scheme;
use airlock_core::glob::HostPattern;
use airlock_core::inject::{Refusal, RequestView, SecretDecl, SecretIndex, Slot};
use base64::Engine;

fn index() -> SecretIndex {
    let decl = |name: &str, host: &str, slot: Slot| SecretDecl {
        name: name.into(),
        hosts: vec![HostPattern::parse(host).unwrap()],
        slot,
        format: "Bearer {secret}".into(),
        placeholder: format!("airlock-{name}"),
        env: None,
        allow_http: false,
    };
    SecretIndex::new(vec![
        decl("gmail", "gmail.googleapis.com", Slot::Header("authorization".into())),
        decl("maps", "maps.example.com", Slot::Query("key".into())),
        decl("jira", "*.atlassian.net", Slot::Basic { user: "me@x".into() }),
    ])
}

fn view<'a>(
    host: &'a str,
    target: &'a str,
    headers: &'a [(&'a str, &'a [u8])],
    body: Option<&'a [u8]>,
) -> RequestView<'a> {
    RequestView {
        scheme: Scheme::Https,
        host,
        target,
        headers,
        body,
    }
}

fn granted() -> Vec<String> {
    vec!["gmail".into(), "maps".into(), "jira".into()]
}

#[test]
fn injects_only_in_declared_slot_toward_bound_host() {
    let idx = index();
    let h: &[(&str, &[u8])] = &[("authorization", b"Bearer airlock-gmail")];
    let plan = idx
        .plan(&granted(), &view("gmail.googleapis.com", "/m", h, None))
        .unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].name, "gmail");

    let plan = idx
        .plan(
            &granted(),
            &view("maps.example.com", "/geo?key=airlock-maps&q=1", &[], None),
        )
        .unwrap();
    assert_eq!(plan[0].slot, Slot::Query("key".into()));

    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me@x:airlock-jira")
    );
    let h: &[(&str, &[u8])] = &[("authorization", basic.as_bytes())];
    let plan = idx.plan(&granted(), &view("acme.atlassian.net", "/", h, None)).unwrap();
    assert_eq!(plan[0].name, "jira");
}

#[test]
fn placeholder_outside_its_slot_is_never_injected() {
    let idx = index();
    // Another header, the path, another query parameter, the body — toward a bound host.
    let h: &[(&str, &[u8])] = &[("x-note", b"airlock-gmail")];
    assert_eq!(
        idx.plan(&granted(), &view("gmail.googleapis.com", "/", h, None))
            .unwrap(),
        vec![]
    );
    assert_eq!(
        idx.plan(&granted(), &view("gmail.googleapis.com", "/airlock-gmail", &[], None))
            .unwrap(),
        vec![]
    );
    assert_eq!(
        idx.plan(&granted(), &view("maps.example.com", "/?q=airlock-maps", &[], None))
            .unwrap(),
        vec![]
    );
    assert_eq!(
        idx.plan(&granted(), &view("maps.example.com", "/?key=x-airlock-maps", &[], None))
            .unwrap(),
        vec![]
    );
    assert_eq!(
        idx.plan(
            &granted(),
            &view("gmail.googleapis.com", "/", &[], Some(b"{\"t\":\"airlock-gmail\"}"))
        )
        .unwrap(),
        vec![]
    );
}

#[test]
fn placeholder_toward_other_host_is_exfiltration_wherever_it_hides() {
    let idx = index();
    type Case<'a> = (Vec<(&'a str, &'a [u8])>, &'a str, Option<&'a [u8]>);
    let cases: Vec<Case> = vec![
        (vec![("authorization", b"Bearer airlock-gmail")], "/", None),
        (vec![("x-any", b"zzairlock-gmailzz")], "/", None),
        (vec![], "/p/airlock-gmail", None),
        (vec![], "/p/%61irlock-gmail", None),
        (vec![("airlock-gmail", b"x")], "/", None),
        (vec![], "/p?x=airlock-maps", None),
        (vec![], "/p", Some(b"leak airlock-gmail")),
    ];
    for (h, target, body) in cases {
        let r = idx.plan(&granted(), &view("evil.example", target, &h, body));
        assert!(matches!(r, Err(Refusal::Exfiltration { .. })), "{target} {r:?}");
    }
    // Suffix binding does not admit look-alikes.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me@x:airlock-jira")
    );
    let h: &[(&str, &[u8])] = &[("authorization", basic.as_bytes())];
    assert!(matches!(
        idx.plan(&granted(), &view("atlassian.net.evil.io", "/", h, None)),
        Err(Refusal::Exfiltration { .. })
    ));
}

#[test]
fn ungranted_secret_and_plain_http_are_refused() {
    let idx = index();
    let h: &[(&str, &[u8])] = &[("authorization", b"Bearer airlock-gmail")];
    assert_eq!(
        idx.plan(&["maps".to_string()], &view("gmail.googleapis.com", "/", h, None)),
        Err(Refusal::NotGranted { secret: "gmail".into() })
    );
    let mut v = view("gmail.googleapis.com", "/", h, None);
    v.scheme = Scheme::Http;
    assert_eq!(
        idx.plan(&granted(), &v),
        Err(Refusal::PlainHttp { secret: "gmail".into() })
    );
}

/// A GitHub App's token goes into the Authorization header either way the agent sent its
/// placeholder: as the header's value (the API) or as a Basic password (git over HTTPS).
#[test]
fn an_authorization_slot_resolves_to_the_header_or_basic_form_the_agent_used() {
    let idx = SecretIndex::new(vec![SecretDecl {
        name: "gh".into(),
        hosts: vec![
            HostPattern::parse("github.com").unwrap(),
            HostPattern::parse("api.github.com").unwrap(),
        ],
        slot: Slot::Authorization {
            basic_user: "x-access-token".into(),
        },
        format: "Bearer {secret}".into(),
        placeholder: "airlock-gh".into(),
        env: None,
        allow_http: false,
    }]);
    let g = vec!["gh".to_string()];
    let h: &[(&str, &[u8])] = &[("authorization", b"token airlock-gh")];
    let plan = idx.plan(&g, &view("api.github.com", "/user", h, None)).unwrap();
    assert_eq!(plan[0].slot, Slot::Header("authorization".into()));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("git:airlock-gh")
    );
    let h: &[(&str, &[u8])] = &[("authorization", basic.as_bytes())];
    let plan = idx
        .plan(&g, &view("github.com", "/o/r.git/info/refs", h, None))
        .unwrap();
    assert_eq!(
        plan[0].slot,
        Slot::Basic {
            user: "x-access-token".into()
        }
    );
    // Anywhere else, or toward another host, it is what it is for any secret.
    let h: &[(&str, &[u8])] = &[("x-token", b"airlock-gh")];
    assert!(idx.plan(&g, &view("api.github.com", "/", h, None)).unwrap().is_empty());
    let h: &[(&str, &[u8])] = &[("authorization", b"Bearer airlock-gh")];
    assert!(matches!(
        idx.plan(&g, &view("evil.example", "/", h, None)),
        Err(Refusal::Exfiltration { .. })
    ));
}

#[test]
fn an_aws_signature_is_its_slot_in_the_header_or_a_presigned_query() {
    let idx = SecretIndex::new(vec![SecretDecl {
        name: "aws".into(),
        hosts: vec![HostPattern::parse("*.amazonaws.com").unwrap()],
        slot: Slot::AwsSignature,
        format: "{secret}".into(),
        placeholder: "AKIAPLACEHOLDER".into(),
        env: None,
        allow_http: false,
    }]);
    let aws = vec!["aws".to_string()];
    let auth: &[(&str, &[u8])] = &[(
        "authorization",
        b"AWS4-HMAC-SHA256 Credential=AKIAPLACEHOLDER/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
    )];
    let plan = idx.plan(&aws, &view("s3.amazonaws.com", "/b/k", auth, None)).unwrap();
    assert_eq!(plan[0].slot, Slot::AwsSignature);
    let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAPLACEHOLDER%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00";
    let plan = idx.plan(&aws, &view("s3.amazonaws.com", presigned, &[], None)).unwrap();
    assert_eq!(plan[0].slot, Slot::AwsSignature);
    // Anywhere else in the query it is no signature: nothing to sign again.
    let elsewhere = "/b/k?prefix=AKIAPLACEHOLDER%2Fx";
    assert!(
        idx.plan(&aws, &view("s3.amazonaws.com", elsewhere, &[], None))
            .unwrap()
            .is_empty()
    );
    // A presigned URL toward a host the keys are not bound to: exfiltration.
    assert!(matches!(
        idx.plan(&aws, &view("attacker.example", presigned, &[], None)),
        Err(Refusal::Exfiltration { .. })
    ));
}
