//! Stage 1, bytes → facts: where the request goes (CONNECT/SNI/Host agreement, the canonical
//! host), what it says (every reading of its method and path, its query, the headers and body
//! facts the rules read — through `airlock-inspect`, as `policy explain` reads them) and which
//! placeholders it carries (the injection plan, or an exfiltration refusal). No later stage
//! parses the request again.

use std::sync::Arc;
use std::time::Duration;

use airlock_core::facts::{Body as BodyState, RequestFacts};
use airlock_core::inject::{Injection, Refusal, RequestView};
use airlock_core::policy::Policy;
use airlock_inspect::Want;
use airlock_inspect::aws::AwsRequest;
use airlock_inspect::request::{Head, add_aws_calls, body_state, head_facts, plan_body, settle_methods};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::body::{AgentBody, Prefetched, prefetch};
use crate::conn::{Conn, destination, is_websocket};
use crate::metrics::Metrics;
use crate::record::{Record, Stop, deny};

/// Longest a body may take to inspect before it is treated as unreadable (fail closed).
const INSPECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Bodies up to this size are inspected on the reactor: a blocking-pool hop costs more than
/// parsing them.
const INLINE_INSPECT: usize = 8 * 1024;

/// A request as the stages hand it on: its facts, its bytes, and its audit record so far.
pub(crate) struct Inbound<B = Incoming> {
    pub(crate) rec: Record,
    /// The policy this request is decided by, from its first stage to its last.
    pub(crate) policy: Arc<Policy>,
    pub(crate) facts: RequestFacts,
    /// Path and query exactly as sent (forwarded as they are).
    pub(crate) target: String,
    pub(crate) parts: http::request::Parts,
    pub(crate) body: Prefetched<B>,
    pub(crate) plan: Vec<Injection>,
    /// The agent's side of a WebSocket upgrade.
    pub(crate) upgrade: Option<OnUpgrade>,
    pub(crate) agent_h2: bool,
}

impl<B> Inbound<B> {
    pub(crate) fn websocket(&self) -> bool {
        self.upgrade.is_some()
    }
}

pub(crate) async fn read<B: AgentBody>(conn: &Conn, mut req: Request<B>) -> Result<Inbound<B>, Stop> {
    let state = &conn.state;
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let claimed = conn.tunnel.as_ref().map_or_else(
        || req.uri().host().unwrap_or("").to_ascii_lowercase(),
        |t| t.host.clone(),
    );
    let mut rec = Record::new(&conn.agent.name, req.method().as_str(), claimed, &target);
    let (scheme, host, port) = match destination(conn, &req) {
        Ok(d) => d,
        Err(reason) => {
            Metrics::inc(&state.metrics.misdirected);
            let ev = rec.event("misdirected", &deny(reason, None), vec![], vec![]);
            return Err(Stop::refused(state, ev, StatusCode::MISDIRECTED_REQUEST, "deny", None));
        }
    };
    rec.host = host.clone();
    let policy = state.policy();
    let upgrade = is_websocket(&req).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(header::PROXY_AUTHORIZATION);
    let agent_h2 = parts.version == http::Version::HTTP_2;

    let header_view: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let head = Head {
        agent: &conn.agent.name,
        method: parts.method.as_str(),
        scheme,
        host: &host,
        port,
        target: &target,
        headers: &header_view,
        keep_headers: policy.uses_headers(),
    };
    let mut facts = match head_facts(&head) {
        Ok(f) => f,
        Err(bad) => {
            let ev = rec.event("request", &deny(bad.to_string(), None), vec![], vec![]);
            return Err(Stop::refused(state, ev, StatusCode::BAD_REQUEST, "deny", None));
        }
    };
    drop(header_view);

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let plan = plan_body(&mut facts, &policy, content_type.as_deref());
    let limit = if plan.read() {
        state.limits.inspect
    } else {
        state.limits.prefetch
    };
    let pre = match prefetch(body, limit).await {
        Ok(p) => p,
        Err(e) => {
            let ev = rec.event(
                "request",
                &deny(format!("could not read the request body: {e}"), None),
                vec![],
                vec![],
            );
            return Err(Stop::refused(state, ev, StatusCode::BAD_REQUEST, "deny", None));
        }
    };
    let whole: Option<&[u8]> = match &pre {
        Prefetched::Full(b) => Some(b),
        Prefetched::Empty => Some(&[]),
        Prefetched::Partial(..) => None,
    };
    settle_methods(&mut facts, &plan, content_type.as_deref(), whole);
    facts.body = match whole {
        // Parsing up to 1 MiB of SQL or GraphQL is CPU work: large bodies leave the reactor.
        Some(b) if plan.needs.any() && b.len() > INLINE_INSPECT => {
            inspect_blocking(
                content_type,
                Bytes::copy_from_slice(b),
                &facts.query,
                Want::from(plan.needs),
            )
            .await
        }
        _ => body_state(&plan, content_type.as_deref(), whole, &facts.query),
    };
    let header_view: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let aws = AwsRequest {
        method: parts.method.as_str(),
        host: &host,
        target: &target,
        headers: &header_view,
        body: whole,
    };
    add_aws_calls(&mut facts, &plan, &aws);
    drop(header_view);

    // Placeholders: an exfiltration attempt is refused whatever the policy says.
    let plan = scan(conn, &rec, &facts, &target, &parts, &pre)?;
    Ok(Inbound {
        rec,
        policy,
        facts,
        target,
        parts,
        body: pre,
        plan,
        upgrade,
        agent_h2,
    })
}

/// Body facts on the blocking pool with a deadline. A parser that panics or runs out of time
/// reads as an unreadable body: the fail-closed reading.
async fn inspect_blocking(
    content_type: Option<String>,
    body: Bytes,
    query: &[(String, String)],
    want: Want,
) -> BodyState {
    let query = query.to_vec();
    let work =
        tokio::task::spawn_blocking(move || airlock_inspect::inspect(content_type.as_deref(), &body, &query, want));
    match tokio::time::timeout(INSPECT_TIMEOUT, work).await {
        Ok(Ok(facts)) => BodyState::Inspected(facts),
        Ok(Err(_)) | Err(_) => BodyState::TooLarge,
    }
}

/// The injection plan for what has been read (a streamed remainder is scanned as it passes);
/// an exfiltration attempt or a placeholder the agent may not use is refused and audited.
pub(crate) fn scan<B>(
    conn: &Conn,
    rec: &Record,
    facts: &RequestFacts,
    target: &str,
    parts: &http::request::Parts,
    body: &Prefetched<B>,
) -> Result<Vec<Injection>, Stop> {
    let state = &conn.state;
    let head: Option<&[u8]> = match body {
        Prefetched::Empty => None,
        Prefetched::Full(b) | Prefetched::Partial(b, _) => Some(b),
    };
    let header_view: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let view = RequestView {
        scheme: facts.scheme,
        host: &facts.host,
        target,
        headers: &header_view,
        body: head,
    };
    state.secrets.plan(&conn.agent.secrets, &view).map_err(|refusal| {
        let exfil = matches!(refusal, Refusal::Exfiltration { .. });
        Metrics::inc(if exfil {
            &state.metrics.exfiltration
        } else {
            &state.metrics.denied
        });
        let kind = if exfil { "exfiltration" } else { "request" };
        let ev = rec.event(kind, &deny(refusal.reason(&facts.host), None), vec![], vec![]);
        Stop::refused(state, ev, StatusCode::FORBIDDEN, "deny", None)
    })
}
