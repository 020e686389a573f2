//! The agent-facing listener: proxy authentication, absolute-form HTTP, and CONNECT
//! tunnels whose first bytes decide what happens — TLS is intercepted, HTTP is served,
//! anything else is refused (invariant 9).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::time::Instant;

use crate::answer::{answer, empty, proxy_auth_required};
use crate::conn::{Conn, canonical_host};
use crate::handle::handle;
use crate::intercept;
use crate::metrics::Metrics;
use crate::record::refuse_tunnel;
use crate::rewind::Rewind;
use crate::session::{HARD_MAX_HEAD, head_too_large, serve_http};
use crate::state::{Agent, GatewayState, Principal, token_hash};
use crate::upstream::UpBody;

/// Serves agents on an already-bound listener until the task is dropped. Each agent
/// authenticates with `Proxy-Authorization` (its name and token).
/// Once the gateway drains, it stops accepting and closes the listener (new connections are
/// refused); connections already accepted finish their requests.
pub async fn serve(listener: TcpListener, state: Arc<GatewayState>) {
    let listening = state.drain.listen();
    loop {
        let accepted = tokio::select! {
            biased;
            () = state.drain.draining() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                spawn_connection(stream, state.clone(), Who::Token);
            }
            // EMFILE and friends: back off instead of spinning.
            Err(e) => accept_failed(e).await,
        }
    }
    // Closed before it is counted out: `Drain::closed` means new connections are refused.
    drop(listener);
    drop(listening);
}

/// Serves one sandboxed agent on a Unix socket that only its sandbox can reach (the relay
/// inside the sandbox forwards to it). The socket is the identity: nothing inside the
/// sandbox holds a gateway token, so nothing there can act as another agent.
pub async fn serve_agent_socket(listener: UnixListener, agent: String, state: Arc<GatewayState>) {
    let agent: Arc<str> = agent.into();
    let listening = state.drain.listen();
    loop {
        let accepted = tokio::select! {
            biased;
            () = state.drain.draining() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => spawn_connection(stream, state.clone(), Who::Socket(agent.clone())),
            Err(e) => accept_failed(e).await,
        }
    }
    drop(listener);
    drop(listening);
}

async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// How a connection's agent is known.
#[derive(Clone)]
enum Who {
    /// `Proxy-Authorization: Basic name:token` on every request.
    Token,
    /// The listener belongs to this agent.
    Socket(Arc<str>),
}

fn spawn_connection<S>(stream: S, state: Arc<GatewayState>, who: Who)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _open = state.drain.track();
        let drain_state = state.clone();
        let header_timeout = state.timeouts.header;
        // Who last authenticated on this connection: a reload that removes it closes the
        // connection (each request authenticates anyway; this closes an idle keep-alive too).
        let last = Arc::new(std::sync::Mutex::new(match &who {
            Who::Socket(name) => Some(Principal::Socket(name.clone())),
            Who::Token => None,
        }));
        let seen = last.clone();
        let svc = service_fn(move |req| {
            let (state, who, seen) = (state.clone(), who.clone(), seen.clone());
            async move { Ok::<_, std::convert::Infallible>(proxy_request(state, who, seen, req).await) }
        });
        // hyper counts the wait for a head from when the connection is ready for one, so a
        // silent connection is closed after header_timeout too.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(HARD_MAX_HEAD)
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        tokio::pin!(conn);
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            () = last_revoked(&drain_state, &last) => {
                // A request in flight finishes; no new one is read.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            () = drain_state.drain.draining() => {
                // The request in flight finishes; an idle connection closes now.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "agent connection ended with an error");
        }
    });
}

/// Completes at a swap of agents that leaves the connection's last authenticated agent out.
async fn last_revoked(state: &GatewayState, last: &std::sync::Mutex<Option<Principal>>) {
    loop {
        state.identities_swapped().await;
        let who = last
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        if let Some(who) = who
            && state.identities().resolve(&who).is_none()
        {
            crate::record::connection_cut(state, who.name(), "");
            return;
        }
    }
}

/// Checks `Proxy-Authorization: Basic name:token` against the issued tokens.
fn authenticate(state: &GatewayState, req: &Request<Incoming>) -> Result<(Arc<Agent>, Principal), &'static str> {
    let raw = req
        .headers()
        .get(http::header::PROXY_AUTHORIZATION)
        .ok_or("proxy credentials required")?;
    let text = raw.to_str().map_err(|_| "malformed proxy credentials")?;
    let (scheme, b64) = text.trim().split_once(' ').ok_or("malformed proxy credentials")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("proxy credentials must use Basic");
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "malformed proxy credentials")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "malformed proxy credentials")?;
    let (name, token) = decoded.split_once(':').ok_or("malformed proxy credentials")?;
    let who = Principal::Token {
        name: name.to_owned(),
        hash: token_hash(token),
    };
    match state.identities().resolve(&who) {
        Some(agent) => Ok((agent, who)),
        None => Err("unknown agent or wrong token"),
    }
}

async fn proxy_request(
    state: Arc<GatewayState>,
    who: Who,
    seen: Arc<std::sync::Mutex<Option<Principal>>>,
    req: Request<Incoming>,
) -> Response<UpBody> {
    let found = match &who {
        Who::Token => authenticate(&state, &req),
        Who::Socket(name) => {
            let who = Principal::Socket(name.clone());
            match state.identities().resolve(&who) {
                Some(agent) => Ok((agent, who)),
                None => Err("this agent is no longer declared"),
            }
        }
    };
    // The head limit comes first: an oversized head gets 431 whoever sent it.
    let raw_host = req.uri().host().unwrap_or_default();
    let host = canonical_host(raw_host).unwrap_or_else(|_| raw_host.to_ascii_lowercase());
    let who_sent = found.as_ref().ok().map(|(a, _)| a.name.as_str());
    if let Some(refused) = head_too_large(&state, who_sent, &host, &req) {
        return refused;
    }
    let (agent, who) = match found {
        Ok(found) => {
            if let Ok(mut last) = seen.lock() {
                *last = Some(found.1.clone());
            }
            found
        }
        Err(why) => {
            Metrics::inc(&state.metrics.auth_failures);
            return proxy_auth_required(why);
        }
    };
    if req.method() == Method::CONNECT {
        return connect(state, agent, who, req);
    }
    // Absolute-form plain HTTP: `GET http://host/path HTTP/1.1`.
    if req.uri().scheme_str() == Some("http") && req.uri().host().is_some() {
        let conn = Arc::new(Conn::plain(state, agent, who));
        return handle(conn, req).await;
    }
    answer(
        StatusCode::BAD_REQUEST,
        "deny",
        None,
        "airlock is a proxy: send absolute-form http:// requests or CONNECT for https",
    )
}

fn connect(state: Arc<GatewayState>, agent: Arc<Agent>, who: Principal, req: Request<Incoming>) -> Response<UpBody> {
    let Some(auth) = req.uri().authority().cloned() else {
        return answer(StatusCode::BAD_REQUEST, "deny", None, "CONNECT needs host:port");
    };
    let Some(port) = auth.port_u16() else {
        return answer(StatusCode::BAD_REQUEST, "deny", None, "CONNECT needs host:port");
    };
    let host = match canonical_host(auth.host()) {
        Ok(h) => h,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "deny",
                None,
                &format!("CONNECT needs host:port: {e}"),
            );
        }
    };
    Metrics::inc(&state.metrics.tunnels);
    let open = state.drain.track();
    tokio::spawn(async move {
        let _open = open;
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => tunnel(state, (agent, who), host, port, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::OK;
    r
}

async fn tunnel(
    state: Arc<GatewayState>,
    (agent, who): (Arc<Agent>, Principal),
    host: String,
    port: u16,
    mut io: TokioIo<hyper::upgrade::Upgraded>,
) {
    // One deadline for the first bytes and, for TLS, the whole handshake.
    let deadline = Instant::now() + state.timeouts.handshake;
    let mut first = vec![0u8; 8];
    let n = match tokio::time::timeout_at(deadline, io.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        Ok(_) => return,
        Err(_) => {
            let secs = state.timeouts.handshake.as_secs();
            return refuse_tunnel(
                &state,
                &agent.name,
                &host,
                &format!("refused: nothing was sent within {secs}s (gateway.handshake_timeout)"),
            );
        }
    };
    first.truncate(n);
    let stream = Rewind::new(Bytes::from(first.clone()), io);
    if first[0] == 0x16 {
        intercept::serve_tls(state, (agent, who), (host, port), stream, deadline).await;
    } else if first.iter().take_while(|b| **b != b' ').all(|b| b.is_ascii_uppercase()) && first[0].is_ascii_uppercase()
    {
        // Plain HTTP inside the tunnel: served like absolute-form requests to this authority.
        let conn = Arc::new(Conn::tunneled(
            state,
            agent,
            who,
            crate::conn::TunnelTarget::plain(host, port),
        ));
        serve_http(conn, stream).await;
    } else {
        refuse_tunnel(
            &state,
            &agent.name,
            &host,
            "refused: the tunnel carries neither TLS nor HTTP",
        );
    }
}
