//! TLS interception inside a CONNECT tunnel. The certificate is minted for the CONNECT
//! authority (never chosen from the agent-supplied SNI), and SNI must agree with it:
//! a mismatch gets 421 on every request and nothing is dialed (invariant 9).

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_tls::FixedCert;
use rustls::server::Acceptor;
use tokio::time::timeout_at;
use tokio_rustls::LazyConfigAcceptor;

use crate::conn::{Conn, TunnelTarget};
use crate::record::refuse_tunnel;
use crate::rewind::Rewind;
use crate::session::serve_http;
use crate::state::{Agent, GatewayState, Principal};

type TunnelIo = Rewind<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Intercepts TLS for the CONNECT authority `(host, port)`; the ClientHello and the rest of
/// the handshake must be done by `deadline`, or the tunnel is refused.
pub(crate) async fn serve_tls(
    state: Arc<GatewayState>,
    (agent, who): (Arc<Agent>, Principal),
    (host, port): (String, u16),
    io: TunnelIo,
    deadline: tokio::time::Instant,
) {
    let stalled = |what: &str| {
        let secs = state.timeouts.handshake.as_secs();
        refuse_tunnel(
            &state,
            &agent.name,
            &host,
            &format!("refused: {what} within {secs}s (gateway.handshake_timeout)"),
        );
    };
    let start = match timeout_at(deadline, LazyConfigAcceptor::new(Acceptor::default(), io)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            refuse_tunnel(
                &state,
                &agent.name,
                &host,
                &format!("refused: bad TLS ClientHello ({e})"),
            );
            return;
        }
        Err(_) => return stalled("no whole TLS ClientHello arrived"),
    };
    // An SNI that is not a host at all (rustls accepts only DNS names) differs from any CONNECT host.
    let sni = start
        .client_hello()
        .server_name()
        .map(|s| crate::conn::canonical_host(s).unwrap_or_else(|_| s.to_string()));
    // No SNI is normal for IP literals; a different name is a confused destination.
    let sni_mismatch = sni.as_ref().is_some_and(|s| *s != host);
    let config = match server_config(&state, &host) {
        Ok(c) => c,
        Err(e) => {
            refuse_tunnel(
                &state,
                &agent.name,
                &host,
                &format!("refused: cannot mint a certificate ({e})"),
            );
            return;
        }
    };
    let tls = match timeout_at(deadline, start.into_stream(config)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, host = %host, "agent TLS handshake failed");
            return;
        }
        Err(_) => return stalled("the TLS handshake did not complete"),
    };
    let mut target = TunnelTarget::tls(host, port);
    if sni_mismatch {
        target.sni_mismatch = sni;
    }
    serve_http(Arc::new(Conn::tunneled(state, agent, who, target)), tls).await;
}

/// Cached configs are rebuilt after this long, so re-minted leaves are picked up.
const CONFIG_TTL: Duration = Duration::from_secs(6 * 3600);

/// A server config per host, cached: keeping it lets rustls resume sessions for agents
/// that reconnect, and saves a leaf-cache lookup per tunnel.
fn server_config(state: &GatewayState, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    if let Ok(mut cache) = state.server_configs.lock()
        && let Some((born, c)) = cache.get(host)
        && born.elapsed() < CONFIG_TTL
    {
        return Ok(c.clone());
    }
    let key = state.leaves.get(host).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(key)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let cfg = Arc::new(cfg);
    if let Ok(mut cache) = state.server_configs.lock() {
        cache.put(host.to_string(), (Instant::now(), cfg.clone()));
    }
    Ok(cfg)
}
