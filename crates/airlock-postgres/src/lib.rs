//! airlock's PostgreSQL gateway: agents speak PostgreSQL's wire protocol to airlock, airlock
//! logs in to the real database with the real password, and every statement passes the same
//! policy core, approvals hub and audit log as an HTTP request.
//!
//! Files: `codec` (framing, sans IO), `classify` (statement classes from PostgreSQL's own
//! parser), `tls` (both legs), `upstream` (airlock's login), `session` (the client's TLS and
//! login), `relay` (statements: decide, hold, forward), `decide` (policy, hold, audit),
//! `cancel` (minted BackendKeyData and CancelRequest forwarding).
//!
//! Client authentication is a cleartext password inside TLS, never without it: agent tokens are
//! stored only as SHA-256 hashes, and SCRAM's verifier cannot be derived from such a hash, so
//! the token travels (encrypted) and is checked against its hash as on the HTTP proxy.
//!
//! Two ways in: the TCP listener (`serve`; user = agent name, password = its token) and one Unix
//! socket per sandboxed agent (`serve_agent_socket`; `airlock run`'s relay pipes the sandbox's
//! local port to it). On a socket the socket is the identity, as for HTTP: the password is only
//! the database's placeholder, so nothing inside the sandbox holds a token.
#![forbid(unsafe_code)]

mod cancel;
/// The wire framing (its own crate, so it is fuzzed without the rest).
pub use airlock_pgwire as codec;
pub mod classify;
mod decide;
mod relay;
mod session;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

use airlock_config::DatabaseConfig;
use airlock_core::policy::Policy;
use airlock_gateway::GatewayState;
use airlock_vault::SecretBytes;
use tokio::net::{TcpListener, UnixListener};

pub use cancel::Keys as CancelKeys;
pub use decide::statement_facts;

/// One `[databases.*]` entry with its unsealed password.
pub struct Database {
    pub config: DatabaseConfig,
    pub password: SecretBytes,
    pub roots: Arc<rustls::RootCertStore>,
}

/// Everything a database session needs, built once.
pub struct PgGateway {
    /// Identities, approvals, audit, drain: shared with the HTTP proxy.
    pub gateway: Arc<GatewayState>,
    /// The database rules (config's `database_policy`).
    pub policy: Arc<Policy>,
    pub databases: HashMap<String, Database>,
    /// agent → the databases it may connect to.
    pub agents: HashMap<String, Vec<String>>,
    /// `gateway.allow_private`: restricted upstream addresses the operator allows.
    pub allow_private: Vec<airlock_config::AddrRule>,
    /// The listener's TLS (a leaf naming the address agents dial).
    pub tls: Arc<rustls::ServerConfig>,
    /// TLS on agents' sockets: a leaf naming 127.0.0.1, where the relay listens in the sandbox.
    pub socket_tls: Arc<rustls::ServerConfig>,
    /// The minted cancel keys of every live session, whichever way it came in.
    pub cancel: Arc<CancelKeys>,
}

/// Accepts database clients on an already-bound listener until the gateway drains.
pub async fn serve(listener: TcpListener, gw: Arc<PgGateway>) -> std::io::Result<()> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = gw.gateway.drain.draining() => return Ok(()),
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "database listener: accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        tokio::spawn(async move {
            if let Err(e) = session::run(stream, gw, session::Login::Token).await {
                tracing::debug!(%peer, error = %e, "database session ended");
            }
        });
    }
}

/// Accepts `agent`'s sandboxed clients on its own socket (only its sandbox's relay reaches it)
/// until the gateway drains: every session there is `agent`'s.
pub async fn serve_agent_socket(listener: UnixListener, agent: String, gw: Arc<PgGateway>) -> std::io::Result<()> {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = gw.gateway.drain.draining() => return Ok(()),
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, %agent, "database socket: accept failed");
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (gw, login) = (gw.clone(), session::Login::Socket(agent.clone()));
        tokio::spawn(async move {
            if let Err(e) = session::run(stream, gw, login).await {
                tracing::debug!(error = %e, "database session ended");
            }
        });
    }
}
