//! Stage 7, the response: real secret values in the upstream's answer are replaced by their
//! placeholders (headers now, the body as it streams), hop-by-hop headers dropped, and the
//! request's audit record written once the body is done (stage 8, kept with the bytes it counts).

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;

use crate::answer::{DECISION_HEADER, empty, full};
use crate::body::{ResponseBody, boxed};
use crate::conn::{Conn, strip_hop_by_hop};
use crate::decide::Decided;
use crate::forward::Answered;
use crate::metrics::Metrics;
use crate::record::{error_chain, record_forwarded, upstream_failed};
use crate::upstream::UpBody;

/// Responses up to this size with a Content-Length are read whole before they are sent on.
const SMALL_RESPONSE: usize = 64 * 1024;

pub(crate) async fn deliver(conn: &Conn, answered: Answered, d: &Decided) -> Response<UpBody> {
    let state = &conn.state;
    let Answered { mut resp, out } = answered;
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
    let upgrading = status == StatusCode::SWITCHING_PROTOCOLS && out.upgrade.is_some();
    strip_hop_by_hop(resp.headers_mut(), upgrading);
    resp.headers_mut()
        .insert(DECISION_HEADER, HeaderValue::from_static("allow"));

    let started = out.rec.started;
    let mut ev = out.rec.event("request", &d.decision, d.rules.clone(), out.injected);
    ev.status = Some(status.as_u16());
    ev.bytes_in = out.bytes_in;
    if upgrading {
        let up_upgrade = hyper::upgrade::on(&mut resp);
        if let Some(agent_upgrade) = out.upgrade {
            tokio::spawn(crate::websocket::relay(agent_upgrade, up_upgrade));
        }
        record_forwarded(state, ev);
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, empty());
    }
    // Small responses of known length are read whole: scrubbed in one pass, sent with
    // an exact Content-Length in one write (fewer TLS records and syscalls per request).
    let has_body = !out.head && !matches!(status.as_u16(), 100..=199 | 204 | 304);
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
                upstream_failed(state, ev, reason, d.decision.rule.as_deref())
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
