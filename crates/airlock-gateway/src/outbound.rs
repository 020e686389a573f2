//! Stage 5, injection: the agent's request becomes the upstream request — hop-by-hop headers
//! dropped, the credential put into the one slot the plan names (`credentials::apply`, the only
//! place real values enter a request), the URI built from the canonical host the policy decided
//! on, and a streamed remainder scanned for placeholders as it passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use airlock_core::facts::Scheme;
use airlock_vault::{Scrubber, SecretBytes};
use http::{HeaderValue, Request, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;

use crate::answer::{empty, full};
use crate::body::{AgentBody, Chain, Prefetched, ScannedRest, boxed};
use crate::conn::{Conn, default_port, strip_hop_by_hop};
use crate::decide::Decided;
use crate::facts::Inbound;
use crate::metrics::Metrics;
use crate::record::{Record, Stop, deny};
use crate::upstream::UpBody;

/// The request ready to send, and what the later stages need to know about it.
pub(crate) struct Outbound {
    pub(crate) req: Request<UpBody>,
    /// Set when the streamed remainder carried a placeholder bound elsewhere.
    pub(crate) tripped: Option<Arc<AtomicBool>>,
    pub(crate) agent_h2: bool,
    pub(crate) sent: Sent,
}

/// Tokens minted for this request's dynamic credentials (OAuth2, GitHub App), and what scrubs
/// them from the response.
#[derive(Default)]
pub(crate) struct Minted {
    values: HashMap<String, SecretBytes>,
    scrubber: Option<Scrubber>,
}

/// Obtains the current token of each dynamic credential the plan injects (cached, or refreshed
/// single-flight). A credential that cannot be had refuses the request with 502, naming it.
pub(crate) async fn mint<B: AgentBody>(conn: &Conn, req: &Inbound<B>, d: &Decided) -> Result<Minted, Stop> {
    let state = &conn.state;
    let Some(tokens) = &state.tokens else {
        return Ok(Minted::default());
    };
    let mut minted = Minted::default();
    for inj in req.plan.iter().filter(|i| tokens.is_dynamic(&i.name)) {
        match tokens.current(&inj.name).await {
            Ok(c) => {
                minted.scrubber = Some(match &minted.scrubber {
                    Some(s) => s.then(&c.scrubber),
                    None => c.scrubber.clone(),
                });
                minted.values.insert(inj.name.clone(), c.token.clone());
            }
            Err(e) => {
                Metrics::inc(&state.metrics.denied);
                let ev = req.rec.event(
                    "request",
                    &deny(e.to_string(), d.decision.rule.clone()),
                    d.rules.clone(),
                    vec![],
                );
                return Err(Stop::refused(
                    state,
                    ev,
                    StatusCode::BAD_GATEWAY,
                    "deny",
                    d.decision.rule.as_deref(),
                ));
            }
        }
    }
    Ok(minted)
}

/// What the response stage needs of a request once it is sent.
pub(crate) struct Sent {
    pub(crate) rec: Record,
    /// Names of the injected secrets (for the audit record).
    pub(crate) injected: Vec<String>,
    /// The agent's side of a WebSocket upgrade.
    pub(crate) upgrade: Option<OnUpgrade>,
    pub(crate) bytes_in: u64,
    pub(crate) head: bool,
    /// Scrubs the tokens minted for this request (the agent's scrubber covers static values).
    pub(crate) scrubber: Option<Scrubber>,
}

pub(crate) fn prepare<B: AgentBody>(
    conn: &Conn,
    req: Inbound<B>,
    d: &Decided,
    minted: Minted,
) -> Result<Outbound, Stop> {
    let state = &conn.state;
    let Inbound {
        rec,
        policy: _,
        facts,
        target,
        mut parts,
        body,
        plan,
        upgrade,
        agent_h2,
    } = req;
    let mut up_target = target;
    strip_hop_by_hop(&mut parts.headers, upgrade.is_some());
    parts.headers.remove(header::HOST);
    let ids = state.identities();
    let dynamic = |name: &str| state.tokens.as_ref().is_some_and(|t| t.is_dynamic(name));
    // A dynamic credential's vault entry (a refresh token, a private key) is never injected.
    let value = |name: &str| match dynamic(name) {
        true => minted.values.get(name),
        false => ids.values.get(name),
    };
    if let Err(e) = crate::credentials::apply(&plan, &state.secrets, value, &mut parts.headers, &mut up_target) {
        Metrics::inc(&state.metrics.denied);
        let ev = rec.event(
            "request",
            &deny(e.to_string(), d.decision.rule.clone()),
            d.rules.clone(),
            vec![],
        );
        return Err(Stop::refused(
            state,
            ev,
            StatusCode::FORBIDDEN,
            "deny",
            d.decision.rule.as_deref(),
        ));
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
    // The canonical host, never the agent's spelling of it: the dial sees what the policy saw.
    let (host, port, scheme) = (&facts.host, facts.port, facts.scheme);
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
            let refusal = deny("the request target is not a valid URI".into(), None);
            let ev = rec.event("request", &refusal, d.rules.clone(), vec![]);
            return Err(Stop::refused(state, ev, StatusCode::BAD_REQUEST, "deny", None));
        }
    };
    drop(zeroize::Zeroizing::new(up_target));
    let mut tripped = None;
    let mut bytes_in = 0;
    let up_body = match body {
        Prefetched::Empty => empty(),
        Prefetched::Full(b) => {
            bytes_in = b.len() as u64;
            full(b)
        }
        Prefetched::Partial(head, rest) => {
            bytes_in = head.len() as u64;
            let secrets = state.secrets.clone();
            let dest = host.clone();
            let keep = secrets.decls.iter().map(|d| d.placeholder.len()).max().unwrap_or(1);
            let forbidden =
                Box::new(move |w: &[u8]| secrets.find(w).into_iter().any(|i| !secrets.decls[i].bound_to(&dest)));
            let rest = ScannedRest::new(rest, &head, keep, forbidden);
            tripped = Some(rest.tripped.clone());
            let head_stream = http_body_util::Full::new(head).map_err(|never| match never {});
            boxed(Chain::new(head_stream, rest))
        }
    };
    let head = parts.method == http::Method::HEAD;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    Ok(Outbound {
        req: Request::from_parts(parts, up_body),
        tripped,
        agent_h2,
        sent: Sent {
            rec,
            injected,
            upgrade,
            bytes_in,
            head,
            scrubber: minted.scrubber,
        },
    })
}
