//! The database listener's wiring: `gateway.postgres_listen` and each sandboxed agent's
//! database socket (for `airlock run`), with the `[databases.*]` entries, their passwords
//! unsealed, sharing the HTTP proxy's identities, approvals and audit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use airlock_config::DatabaseKind;
use airlock_gateway::GatewayState;
use airlock_store::Store;
use airlock_vault::Vault;
use anyhow::Context;
use tokio::task::JoinHandle;

use crate::home::Home;

/// The database gateway's listener (when `gateway.postgres_listen` is set) and tasks.
pub(crate) struct Started {
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

/// Binds and starts the PostgreSQL listener when `gateway.postgres_listen` is set, and a socket
/// per declared agent with `databases = [...]` (its sandbox's way to them under `airlock run`).
pub(crate) async fn start(
    home: &Home,
    store: &Store,
    vault: &Vault,
    state: Arc<GatewayState>,
) -> anyhow::Result<Started> {
    let cfg = &home.config;
    let sandboxed: Vec<_> = cfg
        .agents
        .iter()
        .filter(|a| !a.is_glob() && !a.databases.is_empty())
        .collect();
    if cfg.gateway.postgres_listen.is_none() && sandboxed.is_empty() {
        return Ok(Started {
            addr: None,
            tasks: Vec::new(),
        });
    }
    let mut databases = HashMap::new();
    for db in cfg.databases.iter().filter(|d| d.kind == DatabaseKind::Postgres) {
        let what = format!("databases.{}.password", db.name);
        let password = crate::approvals::resolve(&db.password, &what, store, vault).await?;
        let ca = match &db.ca {
            Some(p) => Some(
                std::fs::read(p).with_context(|| format!("databases.{}.ca: cannot read {}", db.name, p.display()))?,
            ),
            None => None,
        };
        let roots = airlock_postgres::tls::roots(ca.as_deref())
            .map_err(|e| anyhow::anyhow!("databases.{}.ca: {e}", db.name))?;
        databases.insert(
            db.name.clone(),
            airlock_postgres::Database {
                config: db.clone(),
                password,
                roots: Arc::new(roots),
            },
        );
    }
    let listener = match cfg.gateway.postgres_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (gateway.postgres_listen)"))?,
        ),
        None => None,
    };
    let bound = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    // The leaf names the address agents dial: the listener's own, or "localhost" for a wildcard.
    let host = match bound {
        Some(b) if !b.ip().is_unspecified() => b.ip().to_string(),
        _ => "localhost".to_string(),
    };
    let tls = airlock_postgres::tls::server_config(&state.leaves, &host)
        .map_err(|e| anyhow::anyhow!("the database listener's certificate: {e}"))?;
    // In the sandbox the relay listens on 127.0.0.1: the leaf names that address.
    let socket_tls = airlock_postgres::tls::server_config(&state.leaves, "127.0.0.1")
        .map_err(|e| anyhow::anyhow!("the database sockets' certificate: {e}"))?;
    let gw = airlock_postgres::PgGateway {
        gateway: state,
        policy: Arc::new(cfg.database_policy.clone()),
        databases,
        agents: cfg
            .agents
            .iter()
            .map(|a| (a.name.clone(), a.databases.clone()))
            .collect(),
        allow_private: cfg.gateway.allow_private.clone(),
        tls,
        socket_tls,
        cancel: Arc::default(),
    };
    let gw = Arc::new(gw);
    let mut tasks = Vec::new();
    if let Some(listener) = listener {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = airlock_postgres::serve(listener, gw).await {
                tracing::error!(error = %e, "database listener stopped");
            }
        }));
    }
    for a in sandboxed {
        let socket = crate::serve::bind_agent_socket(&home.agent_database_socket_path(&a.name), &a.name)?;
        let (gw, agent) = (gw.clone(), a.name.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = airlock_postgres::serve_agent_socket(socket, agent, gw).await {
                tracing::error!(error = %e, "database socket stopped");
            }
        }));
    }
    Ok(Started { addr: bound, tasks })
}
