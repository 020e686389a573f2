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
#![forbid(unsafe_code)]

mod cancel;
pub mod classify;
pub mod codec;
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
use tokio::net::TcpListener;

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
}

/// Accepts database clients on an already-bound listener until the gateway drains.
pub async fn serve(listener: TcpListener, gw: Arc<PgGateway>) -> std::io::Result<()> {
    // The listener's sessions' minted cancel keys (a cancel reaching another replica finds none).
    let keys = Arc::new(cancel::Keys::default());
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
        let (gw, keys) = (gw.clone(), keys.clone());
        tokio::spawn(async move {
            if let Err(e) = session::run(stream, gw, keys).await {
                tracing::debug!(%peer, error = %e, "database session ended");
            }
        });
    }
}
