//! An HTTP session on an accepted stream (a tunnel's, plain or TLS): HTTP/1.1 or HTTP/2, each
//! request through the stages (`handle`), one head limit for every listener and protocol, and
//! the connection closed once it has had no request in flight for `idle_timeout`.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::answer::answer;
use crate::conn::{Activity, Conn};
use crate::handle::handle;
use crate::metrics::Metrics;
use crate::record::{Record, deny, refuse};
use crate::state::GatewayState;
use crate::upstream::UpBody;

/// The largest request head, counted as HTTP/1.1 spells it (request line, `name: value`
/// lines, CRLFs), on every listener and protocol: larger heads get 431 and dial nothing.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// What hyper itself buffers or decodes of a head. Beyond it, HTTP/1.1 gets hyper's bare 431
/// and HTTP/2 a 431 followed by a stream reset. It is larger than [`MAX_HEAD`] (and HPACK counts
/// 32 bytes more per field) so that heads over `MAX_HEAD` are parsed and reach
/// [`head_too_large`], which answers a whole, audited 431.
pub(crate) const HARD_MAX_HEAD: usize = 4 * MAX_HEAD;

/// Serves HTTP/1.1 and HTTP/2 (by preface or ALPN) on an established tunnel stream, until
/// the agent closes it or it has had no request in flight for `idle_timeout`.
pub(crate) async fn serve_http<S>(conn: Arc<Conn>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeouts = conn.state.timeouts;
    let drain = conn.state.clone();
    let drain = &drain.drain;
    let activity = Activity::new();
    let tracker = activity.clone();
    let revoked = conn.state.revoked(conn.who.clone());
    let (cut_state, cut_agent) = (conn.state.clone(), conn.agent.name.clone());
    let cut_host = conn.tunnel.as_ref().map_or_else(String::new, |t| t.host.clone());
    let svc = service_fn(move |req: Request<Incoming>| {
        let kept = conn.clone();
        let busy = tracker.begin();
        async move {
            let host = kept.tunnel.as_ref().map_or("", |t| t.host.as_str());
            // Each request is served for the agent record in force now, never the one the
            // connection was opened with; an agent removed since is refused.
            let resp = match (
                head_too_large(&kept.state, Some(&kept.agent.name), host, &req),
                kept.current(),
            ) {
                (Some(refused), _) => refused,
                (None, Some(conn)) => handle(conn, req).await,
                (None, None) => cut_request(&kept, host, &req),
            };
            Ok::<_, std::convert::Infallible>(busy.until_sent(resp))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .max_buf_size(HARD_MAX_HEAD);
    // Pings find peers that vanished, and bound a head stalled mid-CONTINUATION (the peer
    // cannot answer a ping until its head is done) even while other streams are open.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(HARD_MAX_HEAD as u32)
        .keep_alive_interval(timeouts.idle.min(timeouts.header))
        .keep_alive_timeout(timeouts.header);
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        () = activity.idle_for(timeouts.idle) => {
            tracing::debug!("closing a tunnel connection idle for {:?}", timeouts.idle);
            served.as_mut().graceful_shutdown();
            // A request that slipped in meanwhile finishes; a peer that keeps the close from
            // completing (never reads, never acknowledges) is dropped.
            tokio::select! {
                ended = served.as_mut() => ended,
                () = activity.idle_for(timeouts.header) => Ok(()),
            }
        }
        () = revoked => {
            // The agent was removed (or its token reissued) by a reload: requests in flight
            // finish (a held one is refused, see `hold`), no new one is taken, and it closes.
            crate::record::connection_cut(&cut_state, &cut_agent, &cut_host);
            served.as_mut().graceful_shutdown();
            served.as_mut().await
        }
        () = drain.draining() => {
            // The gateway stops: requests in flight finish, then the connection closes.
            served.as_mut().graceful_shutdown();
            served.as_mut().await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "tunnel connection ended with an error");
    }
}

/// 403, audited, for a request that reached a connection whose agent a reload removed before
/// the connection was closed. Nothing is dialed; the connection closes after it.
fn cut_request<B>(conn: &Conn, host: &str, req: &Request<B>) -> Response<UpBody> {
    Metrics::inc(&conn.state.metrics.denied);
    let rec = Record::new(
        &conn.agent.name,
        req.method().as_str(),
        host.to_owned(),
        req.uri().path(),
    );
    let ev = rec.event("request", &deny(crate::record::CUT.into(), None), vec![], vec![]);
    let mut resp = refuse(&conn.state, ev, StatusCode::FORBIDDEN, "deny", None);
    resp.headers_mut()
        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    resp
}

/// A request head's size as HTTP/1.1 spells it: `METHOD target HTTP/1.1`, one
/// `name: value` line per field, CRLFs. HTTP/2 heads are counted the same way.
fn head_len<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    let fields: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len() + fields + 2
}

/// 431, audited, for a head over [`MAX_HEAD`]; `None` when it fits. Nothing is dialed.
/// Unauthenticated senders (`agent` None) are answered without a record, as their 407s are.
pub(crate) fn head_too_large<B>(
    state: &GatewayState,
    agent: Option<&str>,
    host: &str,
    req: &Request<B>,
) -> Option<Response<UpBody>> {
    let len = head_len(req);
    if len <= MAX_HEAD {
        return None;
    }
    Metrics::inc(&state.metrics.denied);
    let reason = format!("the request head is {len} bytes; the limit is {MAX_HEAD} bytes");
    let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    let Some(agent) = agent else {
        return Some(answer(status, "deny", None, &reason));
    };
    let mut path = req.uri().path().to_owned();
    // The record names the request; a path the size of the limit would bloat the log.
    if path.len() > 256 {
        let end = (0..=256).rev().find(|&i| path.is_char_boundary(i)).unwrap_or(0);
        path.truncate(end);
        path.push('…');
    }
    let rec = Record::new(agent, req.method().as_str(), host.to_owned(), &path);
    let ev = rec.event("request", &deny(reason, None), vec![], vec![]);
    Some(refuse(state, ev, status, "deny", None))
}
