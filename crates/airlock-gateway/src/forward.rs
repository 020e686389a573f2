//! Stage 6, forwarding: the upstream request goes through the pooled client whose connector
//! checks every resolved address at dial time (invariant 9). Failures are answered here: a
//! placeholder found in the streamed body (403, exfiltration), a refused address (403), an
//! upstream that cannot be reached (502).

use std::sync::atomic::Ordering;

use airlock_core::inject::Refusal;
use http::{Response, StatusCode};
use hyper::body::Incoming;

use crate::conn::Conn;
use crate::decide::Decided;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, Sent};
use crate::record::{Stop, deny, error_chain, upstream_failed};
use crate::upstream::{DialError, dial_error};

/// The upstream's answer, and what the response stage needs of the request.
pub(crate) struct Answered {
    pub(crate) resp: Response<Incoming>,
    pub(crate) out: Sent,
}

pub(crate) async fn send(conn: &Conn, out: Outbound, d: &Decided) -> Result<Answered, Stop> {
    let state = &conn.state;
    let Outbound {
        req,
        tripped,
        agent_h2,
        sent,
    } = out;
    // Mirror the agent's protocol: an HTTP/1.1 agent gets a pooled HTTP/1.1 upstream (lower
    // latency per request), an HTTP/2 agent may multiplex over HTTP/2; upgrades need HTTP/1.1.
    let client = if sent.upgrade.is_some() || !agent_h2 {
        &state.client_h1
    } else {
        &state.client
    };
    match client.request(req).await {
        Ok(resp) => Ok(Answered { resp, out: sent }),
        Err(e) => {
            let Sent { rec, injected, .. } = sent;
            let host = rec.host.clone();
            if tripped.is_some_and(|t| t.load(Ordering::SeqCst)) {
                Metrics::inc(&state.metrics.exfiltration);
                let r = Refusal::Exfiltration {
                    secret: "(streamed body)".into(),
                    location: "the body".into(),
                };
                let ev = rec.event("exfiltration", &deny(r.reason(&host), None), d.rules.clone(), vec![]);
                return Err(Stop::refused(state, ev, StatusCode::FORBIDDEN, "deny", None));
            }
            if let Some(dial @ DialError::Forbidden { .. }) = dial_error(&e) {
                Metrics::inc(&state.metrics.dial_refused);
                let ev = rec.event("request", &deny(dial.to_string(), None), d.rules.clone(), vec![]);
                return Err(Stop::refused(state, ev, StatusCode::FORBIDDEN, "deny", None));
            }
            let reason = match dial_error(&e) {
                Some(dial) => dial.to_string(),
                None => format!("upstream request failed: {}", error_chain(&e)),
            };
            let ev = rec.event("request", &d.decision, d.rules.clone(), injected);
            Err(upstream_failed(state, ev, reason, d.decision.rule.as_deref()).into())
        }
    }
}
