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
    let svc = service_fn(move |req: Request<Incoming>| {
        let conn = conn.clone();
        let busy = tracker.begin();
        async move {
            let host = conn.tunnel.as_ref().map_or("", |t| t.host.as_str());
            let resp = match head_too_large(&conn.state, Some(&conn.agent.name), host, &req) {
                Some(refused) => refused,
                None => handle(conn.clone(), req).await,
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
