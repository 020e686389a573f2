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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UnixListener};

use crate::answer::{answer, empty, proxy_auth_required};
use crate::conn::Conn;
use crate::handle::handle;
use crate::metrics::Metrics;
use crate::rewind::Rewind;
use crate::state::{Agent, GatewayState, token_hash};
use crate::upstream::UpBody;
use crate::{intercept, refuse_tunnel};

/// Read buffer per agent connection, which bounds a request head (larger → 431).
const MAX_HEAD: usize = 64 * 1024;

/// How long an agent may take to send a request head (slow-loris connections are closed).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a new tunnel may stay silent before its protocol is known.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves agents on an already-bound listener until the task is dropped. Each agent
/// authenticates with `Proxy-Authorization` (its name and token).
pub async fn serve(listener: TcpListener, state: Arc<GatewayState>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                spawn_connection(stream, state.clone(), Who::Token);
            }
            // EMFILE and friends: back off instead of spinning.
            Err(e) => accept_failed(e).await,
        }
    }
}

/// Serves one sandboxed agent on a Unix socket that only its sandbox can reach (the relay
/// inside the sandbox forwards to it). The socket is the identity: nothing inside the
/// sandbox holds a gateway token, so nothing there can act as another agent.
pub async fn serve_agent_socket(listener: UnixListener, agent: String, state: Arc<GatewayState>) {
    let agent: Arc<str> = agent.into();
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => spawn_connection(stream, state.clone(), Who::Socket(agent.clone())),
            Err(e) => accept_failed(e).await,
        }
    }
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
        let svc = service_fn(move |req| {
            let state = state.clone();
            let who = who.clone();
            async move { Ok::<_, std::convert::Infallible>(proxy_request(state, who, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD)
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "agent connection ended with an error");
        }
    });
}

/// Checks `Proxy-Authorization: Basic name:token` against the issued tokens.
fn authenticate(state: &GatewayState, req: &Request<Incoming>) -> Result<Arc<Agent>, &'static str> {
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
    let ids = state.identities();
    match ids.by_token.get(&token_hash(token)) {
        Some((n, agent)) if n == name => Ok(agent.clone()),
        _ => Err("unknown agent or wrong token"),
    }
}

async fn proxy_request(state: Arc<GatewayState>, who: Who, req: Request<Incoming>) -> Response<UpBody> {
    let found = match &who {
        Who::Token => authenticate(&state, &req),
        Who::Socket(name) => state
            .identities()
            .by_name
            .get(&**name)
            .cloned()
            .ok_or("this agent is no longer declared"),
    };
    let agent = match found {
        Ok(a) => a,
        Err(why) => {
            Metrics::inc(&state.metrics.auth_failures);
            return proxy_auth_required(why);
        }
    };
    if req.method() == Method::CONNECT {
        return connect(state, agent, req);
    }
    // Absolute-form plain HTTP: `GET http://host/path HTTP/1.1`.
    if req.uri().scheme_str() == Some("http") && req.uri().host().is_some() {
        let conn = Arc::new(Conn::plain(state, agent));
        return handle(conn, req).await;
    }
    answer(
        StatusCode::BAD_REQUEST,
        "deny",
        None,
        "airlock is a proxy: send absolute-form http:// requests or CONNECT for https",
    )
}

fn connect(state: Arc<GatewayState>, agent: Arc<Agent>, req: Request<Incoming>) -> Response<UpBody> {
    let Some(auth) = req.uri().authority().cloned() else {
        return answer(StatusCode::BAD_REQUEST, "deny", None, "CONNECT needs host:port");
    };
    let Some(port) = auth.port_u16() else {
        return answer(StatusCode::BAD_REQUEST, "deny", None, "CONNECT needs host:port");
    };
    let host = match crate::conn::canonical_host(auth.host()) {
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
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => tunnel(state, agent, host, port, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::OK;
    r
}

async fn tunnel(
    state: Arc<GatewayState>,
    agent: Arc<Agent>,
    host: String,
    port: u16,
    mut io: TokioIo<hyper::upgrade::Upgraded>,
) {
    let mut first = vec![0u8; 8];
    let n = match tokio::time::timeout(SNIFF_TIMEOUT, io.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return,
    };
    first.truncate(n);
    let stream = Rewind::new(Bytes::from(first.clone()), io);
    if first[0] == 0x16 {
        intercept::serve_tls(state, agent, host, port, stream).await;
    } else if first.iter().take_while(|b| **b != b' ').all(|b| b.is_ascii_uppercase()) && first[0].is_ascii_uppercase()
    {
        // Plain HTTP inside the tunnel: served like absolute-form requests to this authority.
        let conn = Arc::new(Conn::tunneled(
            state,
            agent,
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

/// Serves HTTP/1.1 and HTTP/2 (by preface or ALPN) on an established tunnel stream.
pub(crate) async fn serve_http<S>(conn: Arc<Conn>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let conn = conn.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(conn, req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await {
        tracing::debug!(error = %e, "tunnel connection ended with an error");
    }
}
