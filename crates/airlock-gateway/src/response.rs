//! Stage 7, the response: what the upstream answered, made safe for the agent (invariant 2),
//! hop-by-hop headers dropped, and the request's audit record written once the body is done
//! (stage 8, kept with the bytes it counts).
//!
//! Whenever the agent holds secrets, their real values are replaced by the placeholders
//! everywhere the response can carry them — header names and values, the
//! HTTP/1.1 reason phrase, the body (decoded from its content coding first: an echo inside
//! gzip/deflate/br/zstd bytes would otherwise pass unseen) and the trailers — in literal and
//! encoded forms (see `airlock_vault::Scrubber`). A coding airlock cannot decode is refused
//! with 502: the agent never gets coded bytes it could decode itself.

use airlock_vault::{Coding, ContentDecoder, DecodeError, Scrubber};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;

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

/// A small coded response is decoded whole if it decodes to at most this; beyond, it streams.
const SMALL_DECODED: usize = 16 * SMALL_RESPONSE;

/// Turns the upstream's response into the one the agent gets, or a 502 refusal.
pub(crate) async fn deliver(conn: &Conn, answered: Answered, d: &Decided) -> Response<UpBody> {
    let state = &conn.state;
    let Answered { mut resp, out } = answered;
    let with_tokens = out.scrubber.as_ref().map(|s| conn.agent.scrubber.then(s));
    let scrub = with_tokens.as_ref().unwrap_or(&conn.agent.scrubber);
    Metrics::inc(&state.metrics.allowed);
    let started = out.rec.started;
    let mut ev = out.rec.event("request", &d.decision, d.rules.clone(), out.injected);
    ev.bytes_in = out.bytes_in;
    let (head, agent_upgrade) = (out.head, out.upgrade);
    let rule = d.decision.rule.as_deref();
    let status = resp.status();
    let upgrading = status == StatusCode::SWITCHING_PROTOCOLS && agent_upgrade.is_some();
    let has_body = !head && !matches!(status.as_u16(), 100..=199 | 204 | 304);
    let scrubbing = !scrub.is_passthrough();
    // Read before hop-by-hop stripping drops Transfer-Encoding (which may name a coding too).
    let coding = if scrubbing { coding(resp.headers()) } else { Ok(None) };
    if scrub_head(&mut resp, scrub) {
        Metrics::inc(&state.metrics.scrubbed_responses);
    }
    strip_hop_by_hop(resp.headers_mut(), upgrading);
    resp.headers_mut()
        .insert(DECISION_HEADER, HeaderValue::from_static("allow"));
    ev.status = Some(status.as_u16());

    if upgrading {
        let up_upgrade = hyper::upgrade::on(&mut resp);
        if let Some(agent_upgrade) = agent_upgrade {
            tokio::spawn(crate::websocket::relay(agent_upgrade, up_upgrade));
        }
        record_forwarded(state, ev);
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, empty());
    }
    let coding = match coding {
        // Without a body there is nothing to decode; the agent would get it decoded.
        _ if !has_body => {
            if scrubbing && resp.headers().contains_key(header::CONTENT_ENCODING) {
                resp.headers_mut().remove(header::CONTENT_ENCODING);
                resp.headers_mut().remove(header::CONTENT_LENGTH);
            }
            None
        }
        Ok(c) => c,
        Err(reason) => return upstream_failed(state, ev, reason, rule),
    };
    if coding.is_some() {
        resp.headers_mut().remove(header::CONTENT_ENCODING);
    }
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    // Small responses of known length are read whole: scrubbed in one pass, sent with an
    // exact Content-Length in one write (fewer TLS records and syscalls per request).
    let (mut rparts, rbody) = resp.into_parts();
    let mut rbody = boxed(rbody.map_err(|e| Box::new(e) as crate::upstream::BoxError));
    if has_body && length.is_some_and(|n| n <= SMALL_RESPONSE) {
        let bytes = match rbody.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                let reason = format!("upstream response failed: {}", error_chain(&*e));
                return upstream_failed(state, ev, reason, rule);
            }
        };
        let plain = match coding.map(|c| decode_whole(c, &bytes)) {
            None => Some(bytes.clone()),
            Some(Ok(plain)) => plain,
            Some(Err(e)) => return upstream_failed(state, ev, refusal(&e), rule),
        };
        if let Some(plain) = plain {
            let out = scrub.scrub_once(&plain).map_or(plain, Bytes::from);
            rparts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
            ev.bytes_out = out.len() as u64;
            ev.latency_us = started.elapsed().as_micros() as u64;
            record_forwarded(state, ev);
            return Response::from_parts(rparts, full(out));
        }
        // Decodes to more than is worth holding: streamed like a large response.
        rbody = full(bytes);
    }
    // Content-Length no longer holds once a secret may be swapped for a placeholder.
    if scrubbing {
        rparts.headers.remove(header::CONTENT_LENGTH);
    }
    let decoder = match coding.map(ContentDecoder::new) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => return upstream_failed(state, ev, refusal(&e), rule),
    };
    let state_for_record = state.clone();
    let on_done = Box::new(move |bytes: u64, completed: bool| {
        ev.bytes_out = bytes;
        ev.latency_us = started.elapsed().as_micros() as u64;
        if !completed {
            crate::record::add_detail(&mut ev, serde_json::json!({ "response": "incomplete" }));
        }
        record_forwarded(&state_for_record, ev);
    });
    let body = ResponseBody::new(rbody, scrubbing.then(|| scrub.clone()), decoder, on_done);
    Response::from_parts(rparts, boxed(body))
}

/// The one coding to undo before scrubbing (`None`: identity), or why airlock refuses the
/// response: a coding it cannot decode, or more than one.
fn coding(headers: &HeaderMap) -> Result<Option<Coding>, String> {
    let listed = |name| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|t| !t.is_empty() && t != "identity")
            .collect::<Vec<_>>()
    };
    // hyper undoes "chunked"; any other transfer coding is still on the bytes.
    let mut codings: Vec<String> = listed(header::CONTENT_ENCODING);
    codings.extend(listed(header::TRANSFER_ENCODING).into_iter().filter(|t| t != "chunked"));
    match codings.as_slice() {
        [] => Ok(None),
        [one] => Coding::from_token(one).map(Some).ok_or_else(|| {
            format!(
                "the upstream response is encoded as {:?}, which airlock cannot decode to check it for secrets",
                truncate(one)
            )
        }),
        many => Err(format!(
            "the upstream response has {} stacked content codings; airlock decodes one (gzip, deflate, br or zstd) \
             to check it for secrets",
            many.len()
        )),
    }
}

fn truncate(token: &str) -> String {
    token.chars().take(40).collect()
}

fn refusal(e: &DecodeError) -> String {
    format!("the upstream response could not be decoded to check it for secrets: {e}")
}

/// The whole of a small coded body decoded; `None` when it decodes to more than
/// [`SMALL_DECODED`] bytes.
fn decode_whole(coding: Coding, coded: &[u8]) -> Result<Option<Bytes>, DecodeError> {
    let mut d = ContentDecoder::new(coding)?;
    let mut out = Vec::new();
    let mut rest = coded;
    loop {
        let before = out.len();
        let room = SMALL_DECODED + 1 - before;
        let used = d.decode(rest, &mut out, room)?;
        rest = &rest[used..];
        if out.len() > SMALL_DECODED {
            return Ok(None);
        }
        if rest.is_empty() && out.len() == before {
            break;
        }
    }
    d.finish()?;
    Ok(Some(Bytes::from(out)))
}

/// Scrubs the status line's reason phrase and every header field; true when it changed any.
fn scrub_head(resp: &mut Response<Incoming>, scrub: &Scrubber) -> bool {
    if scrub.is_passthrough() {
        return false;
    }
    let mut changed = scrub_fields(resp.headers_mut(), scrub) > 0;
    let clean = resp
        .extensions()
        .get::<ReasonPhrase>()
        .and_then(|r| scrub.scrub_once(r.as_bytes()));
    if let Some(clean) = clean {
        changed = true;
        match ReasonPhrase::try_from(clean) {
            Ok(r) => {
                resp.extensions_mut().insert(r);
            }
            Err(_) => {
                resp.extensions_mut().remove::<ReasonPhrase>();
            }
        }
    }
    changed
}

/// Scrubs every field of a header (or trailer) section: a value holding a secret gets the
/// placeholder, a field whose name holds one is dropped (as is a value that no longer makes
/// a valid header). Returns how many fields changed.
pub(crate) fn scrub_fields(headers: &mut HeaderMap, scrub: &Scrubber) -> usize {
    let dirty = |(k, v): (&HeaderName, &HeaderValue)| {
        scrub.name_has_secret(k.as_str().as_bytes()) || scrub.scrub_once(v.as_bytes()).is_some()
    };
    // The common case changes nothing: no rebuilt map.
    if scrub.is_passthrough() || !headers.iter().any(dirty) {
        return 0;
    }
    let mut changed = 0;
    let mut name = None;
    for (k, v) in std::mem::take(headers) {
        // Repeated values of one name come with `None`.
        if k.is_some() {
            name = k;
        }
        let Some(n) = name.clone() else { continue };
        if scrub.name_has_secret(n.as_str().as_bytes()) {
            changed += 1;
            continue;
        }
        let v = match scrub.scrub_once(v.as_bytes()) {
            None => v,
            Some(clean) => {
                changed += 1;
                match HeaderValue::from_bytes(&clean) {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            }
        };
        headers.append(n, v);
    }
    changed
}
