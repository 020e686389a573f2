//! One request, start to finish: destination check → facts → injection plan → policy →
//! forward with the credential → scrub and audit the response. The decisions are the
//! core's; this file only gathers facts and carries decisions out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use airlock_core::facts::{Body as BodyState, RequestFacts, Scheme};
use airlock_core::inject::{Injection, Refusal, RequestView};
use airlock_core::policy::Action;
use airlock_inspect::Want;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::answer::{DECISION_HEADER, answer, empty, full};
use crate::body::{Prefetched, ResponseBody, ScannedRest, boxed, prefetch};
use crate::conn::{Conn, canonical_host, default_port, destination, is_websocket, now_ms, strip_hop_by_hop};
use crate::metrics::Metrics;
use crate::record::{Record, audit_unavailable, deny, refuse};
use crate::state::GatewayState;
use crate::upstream::{UpBody, dial_error};

/// Longest a body may take to inspect before it is treated as unreadable (fail closed).
const INSPECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Responses up to this size with a Content-Length are read whole before they are sent on.
const SMALL_RESPONSE: usize = 64 * 1024;

pub async fn handle(conn: Arc<Conn>, mut req: Request<Incoming>) -> Response<UpBody> {
    let state = &conn.state;
    let started = Instant::now();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let mut rec = Record {
        agent: conn.agent.name.clone(),
        method: req.method().as_str().to_string(),
        host: conn
            .tunnel
            .as_ref()
            .map(|t| t.host.clone())
            .unwrap_or_else(|| canonical_host(req.uri().host().unwrap_or(""))),
        path: airlock_core::path::redact_query(&target),
        started,
    };

    let (scheme, host, port) = match destination(&conn, &req) {
        Ok(d) => d,
        Err(reason) => {
            Metrics::inc(&state.metrics.misdirected);
            let ev = rec.event("misdirected", &deny(reason, None), vec![], vec![]);
            return refuse(state, ev, StatusCode::MISDIRECTED_REQUEST, "deny", None);
        }
    };
    rec.host = host.clone();
    let websocket = is_websocket(&req);
    let agent_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let agent_h2 = parts.version == Version::HTTP_2;
    parts.headers.remove(header::PROXY_AUTHORIZATION);

    // Facts for the policy (header values as text; non-UTF-8 values are matched lossily).
    let (raw_path, query) = airlock_core::path::split_target(&target);
    let mut facts = RequestFacts {
        agent: conn.agent.name.clone(),
        method: rec.method.clone(),
        scheme,
        host: host.clone(),
        port,
        path: airlock_core::path::normalize(raw_path),
        query,
        headers: if state.policy.uses_headers() {
            parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        },
        body: BodyState::Empty,
    };
    let needs = state.policy.body_needs(&facts);
    let limit = if needs.any() {
        state.limits.inspect
    } else {
        state.limits.prefetch
    };
    let mut pre = match prefetch(body, limit).await {
        Ok(p) => p,
        Err(e) => {
            let ev = rec.event(
                "request",
                &deny(format!("could not read the request body: {e}"), None),
                vec![],
                vec![],
            );
            return refuse(state, ev, StatusCode::BAD_REQUEST, "deny", None);
        }
    };
    facts.body = match (&pre, needs.any()) {
        (Prefetched::Empty, _) => BodyState::Empty,
        (Prefetched::Full(b), true) => {
            // Parsing up to 1 MiB of SQL or GraphQL is CPU work: keep it off the reactor.
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let b = b.clone();
            let work =
                tokio::task::spawn_blocking(move || airlock_inspect::inspect(ct.as_deref(), &b, Want::from(needs)));
            match tokio::time::timeout(INSPECT_TIMEOUT, work).await {
                Ok(Ok(facts)) => BodyState::Inspected(facts),
                // A parser that panics or takes too long must not let the body through unread:
                // the fail-closed reading applies.
                Ok(Err(_)) | Err(_) => BodyState::TooLarge,
            }
        }
        (Prefetched::Partial(..), true) => BodyState::TooLarge,
        (_, false) => BodyState::Streamed,
    };

    // Placeholders first: an exfiltration attempt is refused whatever the policy says.
    let head: Option<&[u8]> = match &pre {
        Prefetched::Empty => None,
        Prefetched::Full(b) | Prefetched::Partial(b, _) => Some(b),
    };
    let header_view: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let view = RequestView {
        scheme,
        host: &host,
        target: &target,
        headers: &header_view,
        body: head,
    };
    let mut plan: Vec<Injection> = match state.secrets.plan(&conn.agent.secrets, &view) {
        Ok(p) => p,
        Err(refusal) => {
            let exfil = matches!(refusal, Refusal::Exfiltration { .. });
            let kind = if exfil { "exfiltration" } else { "request" };
            Metrics::inc(if exfil {
                &state.metrics.exfiltration
            } else {
                &state.metrics.denied
            });
            let ev = rec.event(kind, &deny(refusal.reason(&host), None), vec![], vec![]);
            return refuse(state, ev, StatusCode::FORBIDDEN, "deny", None);
        }
    };
    drop(header_view);
    let mut bytes_in = head.map_or(0, |b| b.len() as u64);

    let mut decision = state.policy.evaluate(&facts);
    let rules: Vec<String> = decision
        .matched
        .iter()
        .map(|&i| state.policy.rules[i].name.clone())
        .collect();
    match decision.action {
        Action::Deny => {
            Metrics::inc(&state.metrics.denied);
            let ev = rec.event("request", &decision, rules, vec![]);
            return refuse(state, ev, StatusCode::FORBIDDEN, "deny", decision.rule.as_deref());
        }
        Action::Approve => {
            Metrics::inc(&state.metrics.approval_required);
            let ask = crate::hold::Ask {
                conn: &conn,
                rec: &rec,
                facts: &facts,
                decision: &decision,
                rules: &rules,
                target: &target,
                websocket,
            };
            match crate::hold::hold(ask, &mut parts, pre).await {
                crate::hold::Held::Forward {
                    body,
                    plan: p,
                    decision: d,
                } => {
                    bytes_in = body.len() as u64;
                    pre = if body.is_empty() {
                        Prefetched::Empty
                    } else {
                        Prefetched::Full(body)
                    };
                    plan = p;
                    decision = d;
                }
                crate::hold::Held::Refused(resp) => return resp,
            }
        }
        Action::Allow => {}
    }
    // Checked before the rate limits: a request refused anyway spends none of its limits.
    if !state.audit.is_healthy() {
        return audit_unavailable(state);
    }
    // Rate limits of every matching rule that has one (only these may cost a store round trip).
    for &i in &decision.matched {
        let Some(rate) = state.policy.rules[i].rate else {
            continue;
        };
        let name = state.policy.rules[i].name.clone();
        let (status, reason) = match state.limiter.take(i, &name, &conn.agent.name, rate, now_ms()).await {
            Ok(true) => continue,
            Ok(false) => {
                Metrics::inc(&state.metrics.rate_limited);
                let why = format!(
                    "rate limit of rule \"{name}\" exceeded ({}/{}s)",
                    rate.count, rate.per_secs
                );
                (StatusCode::TOO_MANY_REQUESTS, why)
            }
            Err(unchecked) => {
                Metrics::inc(&state.metrics.rate_limit_unavailable);
                (StatusCode::SERVICE_UNAVAILABLE, format!("{unchecked}; refusing"))
            }
        };
        let d = deny(reason, Some(name));
        let ev = rec.event("request", &d, rules, vec![]);
        return refuse(state, ev, status, "deny", d.rule.as_deref());
    }

    // Build the upstream request: the agent's bytes, minus hop-by-hop headers, plus the credential.
    let ids = state.identities();
    let mut up_target = target.clone();
    strip_hop_by_hop(&mut parts.headers, websocket);
    parts.headers.remove(header::HOST);
    if let Err(e) = crate::credentials::apply(&plan, &state.secrets, &ids.values, &mut parts.headers, &mut up_target) {
        Metrics::inc(&state.metrics.denied);
        let ev = rec.event("request", &deny(e.to_string(), decision.rule.clone()), rules, vec![]);
        return refuse(state, ev, StatusCode::FORBIDDEN, "deny", decision.rule.as_deref());
    }
    let injected: Vec<String> = plan.iter().map(|i| i.name.clone()).collect();
    if !injected.is_empty() {
        state
            .metrics
            .injections
            .fetch_add(injected.len() as u64, Ordering::Relaxed);
        // Compressed responses would hide an echoed secret from the scrubber.
        parts
            .headers
            .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    let authority = match (host.contains(':'), port == default_port(scheme)) {
        (true, true) => format!("[{host}]"),
        (true, false) => format!("[{host}]:{port}"),
        (false, true) => host.clone(),
        (false, false) => format!("{host}:{port}"),
    };
    let scheme_str = if scheme == Scheme::Https { "https" } else { "http" };
    let uri: http::Uri = match format!("{scheme_str}://{authority}{up_target}").parse() {
        Ok(u) => u,
        Err(_) => {
            let ev = rec.event(
                "request",
                &deny("the request target is not a valid URI".into(), None),
                rules,
                vec![],
            );
            return refuse(state, ev, StatusCode::BAD_REQUEST, "deny", None);
        }
    };
    drop(zeroize::Zeroizing::new(up_target));
    let mut tripped = None;
    let up_body = match pre {
        Prefetched::Empty => empty(),
        Prefetched::Full(b) => full(b),
        Prefetched::Partial(head, rest) => {
            let secrets = state.secrets.clone();
            let dest = host.clone();
            let keep = secrets.decls.iter().map(|d| d.placeholder.len()).max().unwrap_or(1);
            let forbidden =
                Box::new(move |w: &[u8]| secrets.find(w).into_iter().any(|i| !secrets.decls[i].bound_to(&dest)));
            let rest = ScannedRest::new(rest, &head, keep, forbidden);
            tripped = Some(rest.tripped.clone());
            let head_stream = http_body_util::Full::new(head).map_err(|never| match never {});
            boxed(crate::body::Chain::new(head_stream, rest))
        }
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let up_req = Request::from_parts(parts, up_body);

    // Mirror the agent's protocol: an HTTP/1.1 agent gets a pooled HTTP/1.1 upstream (lower
    // latency per request), an HTTP/2 agent may multiplex over HTTP/2; upgrades need HTTP/1.1.
    let client = if websocket || !agent_h2 {
        &state.client_h1
    } else {
        &state.client
    };
    let result = client.request(up_req).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if tripped.is_some_and(|t| t.load(Ordering::SeqCst)) {
                Metrics::inc(&state.metrics.exfiltration);
                let r = Refusal::Exfiltration {
                    secret: "(streamed body)".into(),
                    location: "the body".into(),
                };
                let ev = rec.event("exfiltration", &deny(r.reason(&host), None), rules, vec![]);
                return refuse(state, ev, StatusCode::FORBIDDEN, "deny", None);
            }
            if let Some(d) = dial_error(&e)
                && matches!(d, crate::upstream::DialError::Forbidden { .. })
            {
                Metrics::inc(&state.metrics.dial_refused);
                let ev = rec.event("request", &deny(d.to_string(), None), rules, vec![]);
                return refuse(state, ev, StatusCode::FORBIDDEN, "deny", None);
            }
            let reason = match dial_error(&e) {
                Some(d) => d.to_string(),
                None => format!("upstream request failed: {}", error_chain(&e)),
            };
            let ev = rec.event("request", &decision, rules, injected);
            return upstream_failed(state, ev, reason, decision.rule.as_deref());
        }
    };
    Metrics::inc(&state.metrics.allowed);

    let status = resp.status();
    let scrub = conn.agent.scrubber.clone();
    for v in resp.headers_mut().values_mut() {
        if let Some(clean) = scrub.scrub_once(v.as_bytes())
            && let Ok(nv) = HeaderValue::from_bytes(&clean)
        {
            Metrics::inc(&state.metrics.scrubbed_responses);
            *v = nv;
        }
    }
    let upgrading = status == StatusCode::SWITCHING_PROTOCOLS && websocket;
    strip_hop_by_hop(resp.headers_mut(), upgrading);
    resp.headers_mut()
        .insert(DECISION_HEADER, HeaderValue::from_static("allow"));

    let mut ev = rec.event("request", &decision, rules, injected);
    ev.status = Some(status.as_u16());
    ev.bytes_in = bytes_in;
    if upgrading {
        let up_upgrade = hyper::upgrade::on(&mut resp);
        if let Some(agent_upgrade) = agent_upgrade {
            tokio::spawn(crate::websocket::relay(agent_upgrade, up_upgrade));
        }
        record_forwarded(state, ev);
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, empty());
    }
    // Small responses of known length are read whole: scrubbed in one pass, sent with
    // an exact Content-Length in one write (fewer TLS records and syscalls per request).
    let has_body = rec.method != "HEAD" && !matches!(status.as_u16(), 100..=199 | 204 | 304);
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if has_body && length.is_some_and(|n| n <= SMALL_RESPONSE) {
        let (mut rparts, rbody) = resp.into_parts();
        return match rbody.collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                let out = scrub.scrub_once(&bytes).map_or(bytes, bytes::Bytes::from);
                rparts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                ev.bytes_out = out.len() as u64;
                ev.latency_us = started.elapsed().as_micros() as u64;
                record_forwarded(state, ev);
                Response::from_parts(rparts, full(out))
            }
            Err(e) => {
                let reason = format!("upstream response failed: {}", error_chain(&e));
                upstream_failed(state, ev, reason, decision.rule.as_deref())
            }
        };
    }
    // Content-Length no longer holds once a secret may be swapped for a placeholder.
    let scrubbing = !scrub.is_passthrough();
    if scrubbing {
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let state_for_record = state.clone();
    let on_done = Box::new(move |bytes: u64, completed: bool| {
        ev.bytes_out = bytes;
        ev.latency_us = started.elapsed().as_micros() as u64;
        if !completed {
            ev.detail = Some(serde_json::json!({ "response": "incomplete" }));
        }
        record_forwarded(&state_for_record, ev);
    });
    let (rparts, rbody) = resp.into_parts();
    let body = ResponseBody::new(
        boxed(rbody.map_err(|e| Box::new(e) as crate::upstream::BoxError)),
        scrubbing.then_some(scrub),
        on_done,
    );
    Response::from_parts(rparts, boxed(body))
}

/// 502 for an allowed request whose upstream failed; the record says why. The request was
/// allowed, so a failed audit append here cannot un-send it — it is counted, not masked.
fn upstream_failed(
    state: &GatewayState,
    mut ev: airlock_core::audit::AuditEvent,
    reason: String,
    rule: Option<&str>,
) -> Response<UpBody> {
    Metrics::inc(&state.metrics.upstream_errors);
    ev.reason = reason;
    ev.status = Some(502);
    let resp = answer(StatusCode::BAD_GATEWAY, "allow", rule, &ev.reason);
    record_forwarded(state, ev);
    resp
}

/// The record of a request that went upstream: it cannot be un-sent, so its record is kept
/// even if the store failed while it was in flight (committed when the store returns).
fn record_forwarded(state: &GatewayState, ev: airlock_core::audit::AuditEvent) {
    if state.audit.record(ev).is_err() {
        Metrics::inc(&state.metrics.audit_unavailable);
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
