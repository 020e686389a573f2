//! One test per stage of the request path, each driving its stage alone against a real state: a
//! configuration parsed as the binary parses it, an in-memory store with the audit writer, a
//! generated CA, and, where a stage dials, a real upstream on 127.0.0.1:0.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use airlock_config::{AddrRule, Config};
use airlock_store::{AuditWriter, Signer, Store};
use airlock_vault::SecretBytes;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::conn::{Conn, TunnelTarget};
use crate::decide::{admit, decide};
use crate::record::Stop;
use crate::state::{GatewayState, Identities};
use crate::upstream::{build_client, client_tls_config};
use crate::{facts, forward, hold, outbound, response};

const REAL: &str = "real-key-0123456789";
const PLACEHOLDER: &str = "airlock-k-placeholder";

const CONFIG: &str = r#"
[[agents]]
name = "bot"
secrets = ["k"]

[secrets.k]
hosts = ["api.example.com", "127.0.0.1"]
header = "X-Key"
placeholder = "airlock-k-placeholder"
allow_http = true

[[rules]]
name = "reads"
hosts = ["api.example.com", "127.0.0.1"]
methods = ["GET"]
action = "allow"

[[rules]]
name = "limited"
hosts = ["api.example.com"]
paths = ["/limited"]
rate = "1/min"
action = "allow"

[[rules]]
name = "no deletes"
hosts = ["api.example.com"]
methods = ["DELETE"]
action = "deny"

[[rules]]
name = "send needs a human"
hosts = ["api.example.com"]
paths = ["/send"]
action = "approve"
approvers = ["owner"]

[people.alice]
roles = ["owner"]
"#;

/// A gateway state for `CONFIG`, its audit writer running; `allow` opens private addresses.
async fn state(allow: Vec<AddrRule>) -> Arc<GatewayState> {
    let cfg = Config::parse(CONFIG, Path::new("stages.toml")).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open_in_memory().await.expect("store");
    let sign: Signer = Arc::new(|_: &[u8]| (vec![0; 64], vec![0; 32]));
    let (audit, _writer) = AuditWriter::start(store, sign, 1000).await.expect("audit writer");
    let declared: Vec<(String, Vec<String>)> = cfg.agents.iter().map(|a| (a.name.clone(), a.secrets.clone())).collect();
    let values = HashMap::from([("k".to_string(), SecretBytes::new(REAL.as_bytes().to_vec()))]);
    let ids = Identities::build(&declared, &[], &cfg.secrets, values);
    let (ca, _) = airlock_tls::CertificateAuthority::generate("stages test CA").expect("CA");
    let leaves = Arc::new(airlock_tls::LeafCache::new(Arc::new(ca), 8));
    let tls = client_tls_config(&[]).expect("client TLS");
    let client = build_client(tls.clone(), allow.clone(), true);
    let client_h1 = build_client(tls, allow, false);
    Arc::new(GatewayState::new(
        cfg.policy,
        cfg.secrets,
        ids,
        leaves,
        client,
        client_h1,
        audit,
    ))
}

fn conn(state: &Arc<GatewayState>, tunnel: Option<TunnelTarget>) -> Conn {
    let agent = state.identities().by_name["bot"].clone();
    let who = crate::state::Principal::Socket("bot".into());
    match tunnel {
        Some(t) => Conn::tunneled(state.clone(), agent, who, t),
        None => Conn::plain(state.clone(), agent, who),
    }
}

fn tunnel() -> Option<TunnelTarget> {
    Some(TunnelTarget::tls("api.example.com".into(), 443))
}

fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).expect("request")
}

fn status(stop: Stop) -> StatusCode {
    stop.0.status()
}

async fn body_text(stop: Stop) -> String {
    let b = (*stop.0)
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&b).into_owned()
}

#[tokio::test]
async fn facts_stage_reads_every_reading_and_refuses_what_it_cannot() {
    let s = state(vec![]).await;
    let c = conn(&s, tunnel());
    let r = req(
        "post",
        "/send;x?_method=DELETE",
        &[("x-http-method-override", "put")],
        "",
    );
    let got = facts::read(&c, r).await.ok().expect("facts");
    let methods: Vec<Option<&str>> = got.facts.methods.iter().map(|m| m.value.as_deref()).collect();
    assert_eq!(methods, [Some("POST"), Some("PUT"), Some("DELETE")]);
    let paths: Vec<&str> = got.facts.paths.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(paths, ["/send;x", "/send"]);
    assert_eq!(got.facts.host, "api.example.com");

    let nul = facts::read(&c, req("GET", "/x%00", &[], "")).await;
    assert_eq!(nul.err().map(status), Some(StatusCode::BAD_REQUEST));
    let confused = facts::read(&c, req("GET", "/", &[("host", "other.example.com")], "")).await;
    assert_eq!(confused.err().map(status), Some(StatusCode::MISDIRECTED_REQUEST));
    // A placeholder used as a header name, in another case, toward a host it is not bound to.
    let other = conn(&s, Some(TunnelTarget::tls("evil.example.net".into(), 443)));
    let exfil = facts::read(&other, req("GET", "/", &[("X-AIRLOCK-K-PLACEHOLDER", "1")], "")).await;
    let stop = exfil.err().expect("refused");
    assert_eq!(stop.0.status(), StatusCode::FORBIDDEN);
    assert!(body_text(stop).await.contains("exfiltration blocked"));
}

#[tokio::test]
async fn decide_stage_answers_a_deny_and_hands_on_the_rest() {
    let s = state(vec![]).await;
    let c = conn(&s, tunnel());
    let mut denied = facts::read(&c, req("DELETE", "/x", &[], "")).await.ok().expect("facts");
    let stop = decide(&c, &mut denied).err().expect("denied");
    assert_eq!(stop.0.status(), StatusCode::FORBIDDEN);
    assert!(body_text(stop).await.contains("no deletes"));
    let mut allowed = facts::read(&c, req("GET", "/x", &[], "")).await.ok().expect("facts");
    assert_eq!(
        decide(&c, &mut allowed).ok().map(|d| d.decision.rule),
        Some(Some("reads".into()))
    );
}

#[tokio::test]
async fn hold_stage_without_approvers_denies_and_passes_the_rest() {
    let s = state(vec![]).await;
    let c = conn(&s, tunnel());
    let mut held = facts::read(&c, req("POST", "/send", &[], "hi"))
        .await
        .ok()
        .expect("facts");
    let d = decide(&c, &mut held).ok().expect("approve");
    let stop = hold::settle(&c, held, d).await.err().expect("denied");
    assert_eq!(stop.0.status(), StatusCode::FORBIDDEN);
    assert!(body_text(stop).await.contains("no approvers are configured"));
    let mut allowed = facts::read(&c, req("GET", "/x", &[], "")).await.ok().expect("facts");
    let d = decide(&c, &mut allowed).ok().expect("allow");
    assert!(hold::settle(&c, allowed, d).await.is_ok());
}

#[tokio::test]
async fn admit_stage_takes_from_the_rate_of_every_matching_rule() {
    let s = state(vec![]).await;
    let c = conn(&s, tunnel());
    let mut first = facts::read(&c, req("POST", "/limited", &[], ""))
        .await
        .ok()
        .expect("facts");
    let d = decide(&c, &mut first).ok().expect("allow");
    assert!(admit(&c, &first.rec, &d).await.is_ok());
    let stop = admit(&c, &first.rec, &d).await.expect_err("limited");
    assert_eq!(stop.0.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn outbound_stage_injects_into_the_declared_slot_toward_the_canonical_host() {
    let s = state(vec![]).await;
    let c = conn(&s, None);
    let r = req(
        "GET",
        "http://2130706433:8080/x",
        &[
            ("x-key", PLACEHOLDER),
            ("connection", "keep-alive, x-drop"),
            ("x-drop", "1"),
            ("x-other", PLACEHOLDER),
        ],
        "",
    );
    let mut inbound = facts::read(&c, r).await.ok().expect("facts");
    let d = decide(&c, &mut inbound).ok().expect("allow");
    let out = outbound::prepare(&c, inbound, &d, Default::default())
        .ok()
        .expect("prepared");
    let h = out.req.headers();
    assert_eq!(h["x-key"], REAL);
    assert_eq!(h["x-other"], PLACEHOLDER, "only the declared slot is filled");
    assert!(h.get("x-drop").is_none() && h.get("connection").is_none());
    assert_eq!(out.req.uri().to_string(), "http://127.0.0.1:8080/x");
    assert_eq!(out.sent.injected, ["k"]);
}

/// A plain upstream on 127.0.0.1:0 that echoes the `x-key` it received in a header and the body.
async fn echo_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|r: Request<hyper::body::Incoming>| async move {
                    let key = r
                        .headers()
                        .get("x-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let resp = http::Response::builder()
                        .header("x-echo", key.clone())
                        .body(Full::new(Bytes::from(format!("you sent {key}"))))
                        .expect("response");
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn forward_and_response_stages_dial_checked_addresses_and_scrub_echoes() {
    let port = echo_upstream().await;
    let allow = vec![AddrRule::parse(&format!("127.0.0.1:{port}")).expect("rule")];
    let s = state(allow).await;
    let c = conn(&s, None);
    let url = format!("http://127.0.0.1:{port}/x");
    let mut inbound = facts::read(&c, req("GET", &url, &[("x-key", PLACEHOLDER)], ""))
        .await
        .ok()
        .expect("facts");
    let d = decide(&c, &mut inbound).ok().expect("allow");
    let out = outbound::prepare(&c, inbound, &d, Default::default())
        .ok()
        .expect("prepared");
    let answered = forward::send(&c, out, &d).await.ok().expect("answered");
    let resp = response::deliver(&c, answered, &d).await;
    assert_eq!(resp.headers()["x-echo"], PLACEHOLDER);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], format!("you sent {PLACEHOLDER}").as_bytes());

    // The same request to a loopback port nobody allowed: refused at dial time.
    let closed = format!("http://127.0.0.1:{}/x", port.wrapping_add(1).max(1));
    let mut inbound = facts::read(&c, req("GET", &closed, &[], "")).await.ok().expect("facts");
    let d = decide(&c, &mut inbound).ok().expect("allow");
    let out = outbound::prepare(&c, inbound, &d, Default::default())
        .ok()
        .expect("prepared");
    let stop = forward::send(&c, out, &d).await.err().expect("refused");
    assert_eq!(stop.0.status(), StatusCode::FORBIDDEN);
    assert!(body_text(stop).await.contains("allow_private"));
}
