//! The database listener's wiring: `gateway.postgres_listen` with the `[databases.*]` entries,
//! their passwords unsealed, sharing the HTTP proxy's identities, approvals and audit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use airlock_config::{Config, DatabaseKind};
use airlock_gateway::GatewayState;
use airlock_store::Store;
use airlock_vault::Vault;
use anyhow::Context;
use tokio::task::JoinHandle;

/// Binds and starts the PostgreSQL listener when `gateway.postgres_listen` is set.
pub(crate) async fn start(
    cfg: &Config,
    store: &Store,
    vault: &Vault,
    state: Arc<GatewayState>,
) -> anyhow::Result<Option<(SocketAddr, JoinHandle<()>)>> {
    let Some(addr) = cfg.gateway.postgres_listen else {
        return Ok(None);
    };
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
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (gateway.postgres_listen)"))?;
    let bound = listener.local_addr()?;
    // The leaf names the address agents dial: the listener's own, or "localhost" for a wildcard.
    let host = if bound.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        bound.ip().to_string()
    };
    let tls = airlock_postgres::tls::server_config(&state.leaves, &host)
        .map_err(|e| anyhow::anyhow!("the database listener's certificate: {e}"))?;
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
    };
    let task = tokio::spawn(async move {
        if let Err(e) = airlock_postgres::serve(listener, Arc::new(gw)).await {
            tracing::error!(error = %e, "database listener stopped");
        }
    });
    Ok(Some((bound, task)))
}
