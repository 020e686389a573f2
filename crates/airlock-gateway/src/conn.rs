//! Who is connected and where their requests may go: the tunnel's target, the
//! CONNECT/SNI/Host agreement check (invariant 9), and hop-by-hop header handling.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_core::facts::Scheme;
use http::{HeaderMap, Request, Response, Version, header};
use http_body_util::BodyExt;
use tokio::sync::watch;

use crate::state::{Agent, GatewayState, Principal};
use crate::upstream::UpBody;

/// The destination a tunnel was opened for.
#[derive(Debug, Clone)]
pub struct TunnelTarget {
    pub host: String,
    pub port: u16,
    pub scheme: Scheme,
    /// The SNI the agent sent, when it differs from the CONNECT host.
    pub sni_mismatch: Option<String>,
}

impl TunnelTarget {
    pub fn tls(host: String, port: u16) -> Self {
        TunnelTarget {
            host,
            port,
            scheme: Scheme::Https,
            sni_mismatch: None,
        }
    }
    pub fn plain(host: String, port: u16) -> Self {
        TunnelTarget {
            host,
            port,
            scheme: Scheme::Http,
            sni_mismatch: None,
        }
    }
}

/// One agent connection: who it is and, inside a tunnel, where it may go.
pub struct Conn {
    pub state: Arc<GatewayState>,
    /// The agent record in force when this request started (see [`Conn::current`]).
    pub agent: Arc<Agent>,
    /// How the agent authenticated: checked again before each request on a kept connection.
    pub who: Principal,
    pub tunnel: Option<TunnelTarget>,
}

impl Conn {
    pub fn plain(state: Arc<GatewayState>, agent: Arc<Agent>, who: Principal) -> Self {
        Conn {
            state,
            agent,
            who,
            tunnel: None,
        }
    }
    pub fn tunneled(state: Arc<GatewayState>, agent: Arc<Agent>, who: Principal, t: TunnelTarget) -> Self {
        Conn {
            state,
            agent,
            who,
            tunnel: Some(t),
        }
    }

    /// This connection with the agent record in force now (its grants and scrubber as last
    /// loaded), or `None` when its agent was removed or its token reissued since it connected.
    /// A kept connection must not serve a request on a snapshot taken at CONNECT time.
    pub(crate) fn current(self: &Arc<Self>) -> Option<Arc<Conn>> {
        let agent = self.state.identities().resolve(&self.who)?;
        // No reload replaced the record (the usual case): this very connection, no copy per request.
        if Arc::ptr_eq(&agent, &self.agent) {
            return Some(self.clone());
        }
        Some(Arc::new(Conn {
            state: self.state.clone(),
            agent,
            who: self.who.clone(),
            tunnel: self.tunnel.clone(),
        }))
    }

    /// Whether the agent this connection authenticated as is still in force.
    pub(crate) fn in_force(&self) -> bool {
        self.state.identities().resolve(&self.who).is_some()
    }
}

/// The one spelling hosts are compared, bound and dialed in (invariant 12): lower-case, no
/// brackets, no trailing dot, IP literals in their canonical text (`2130706433` is `127.0.0.1`).
pub fn canonical_host(h: &str) -> Result<String, airlock_core::host::BadHost> {
    airlock_core::host::canonical_host(h)
}

pub(crate) fn default_port(s: Scheme) -> u16 {
    if s == Scheme::Https { 443 } else { 80 }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses `host[:port]` from a Host header or :authority.
pub(crate) fn split_authority(a: &str) -> Option<(String, Option<u16>)> {
    let auth: http::uri::Authority = a.parse().ok()?;
    Some((canonical_host(auth.host()).ok()?, auth.port_u16()))
}

/// Where the request goes; Err is the reason for a 421.
pub(crate) fn destination<B>(conn: &Conn, req: &Request<B>) -> Result<(Scheme, String, u16), String> {
    let host_header = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    match &conn.tunnel {
        Some(t) => {
            if let Some(sni) = &t.sni_mismatch {
                return Err(format!(
                    "TLS server name {sni} does not match the CONNECT authority {}",
                    t.host
                ));
            }
            let claimed = req.uri().authority().map(|a| a.as_str()).or(host_header);
            if let Some(claimed) = claimed {
                let (h, p) = split_authority(claimed).ok_or_else(|| "malformed Host header".to_string())?;
                if h != t.host || p.unwrap_or(default_port(t.scheme)) != t.port {
                    return Err(format!(
                        "Host {claimed} does not match the CONNECT authority {}:{}",
                        t.host, t.port
                    ));
                }
            }
            Ok((t.scheme, t.host.clone(), t.port))
        }
        None => {
            let uri = req.uri();
            let host = canonical_host(uri.host().unwrap_or_default()).map_err(|e| e.to_string())?;
            let port = uri.port_u16().unwrap_or(80);
            if let Some(claimed) = host_header {
                let (h, p) = split_authority(claimed).ok_or_else(|| "malformed Host header".to_string())?;
                if h != host || p.unwrap_or(80) != port {
                    return Err(format!("Host {claimed} does not match the request URI's authority"));
                }
            }
            Ok((Scheme::Http, host, port))
        }
    }
}

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(listed.iter().map(|s| s.as_str())) {
        if keep_upgrade && (name == "upgrade" || name == "connection") {
            continue;
        }
        h.remove(name);
    }
}

pub(crate) fn is_websocket<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The requests in flight on one connection, so that a connection with none for too long
/// (before its first request, between requests, an HTTP/2 connection with no open stream)
/// can be closed: a silent agent must not hold a descriptor and a task forever.
#[derive(Clone)]
pub(crate) struct Activity(Arc<watch::Sender<usize>>);

/// One request in flight: it ends when its response body is dropped (sent or abandoned).
pub(crate) struct Busy(Arc<watch::Sender<usize>>);

impl Activity {
    pub(crate) fn new() -> Self {
        Activity(Arc::new(watch::Sender::new(0)))
    }

    pub(crate) fn begin(&self) -> Busy {
        self.0.send_modify(|n| *n += 1);
        Busy(self.0.clone())
    }

    /// Resolves once no request has been in flight for `idle` in a row.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        let mut rx = self.0.subscribe();
        loop {
            if rx.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            // Any request starting or ending restarts the count.
            if tokio::time::timeout(idle, rx.changed()).await.is_err() {
                return;
            }
        }
    }
}

impl Busy {
    /// Keeps the request in flight until `resp`'s body is done.
    pub(crate) fn until_sent(self, resp: Response<UpBody>) -> Response<UpBody> {
        resp.map(|body| {
            body.map_frame(move |frame| {
                let _in_flight = &self;
                frame
            })
            .boxed()
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
