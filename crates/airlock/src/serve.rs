//! `airlock serve`: wires config, vault, store, audit writer, gateway and control plane.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use airlock_config::Config;
use airlock_gateway::upstream::{GuardedConnector, OwnAddr, build_guarded_client, is_local_address};
use airlock_gateway::{GatewayState, Identities};
use airlock_store::Store;
use airlock_store::{AuditHandle, AuditWriter, Signer, WriterOptions};
use airlock_vault::Vault;
use anyhow::Context;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use std::collections::HashMap;

use crate::home::{Home, Opened, StoreAt, sealed};

/// How often agents and secret values are re-read from the store, so `agent add` and
/// `secret set` take effect on a running gateway without a store round trip per request
/// (sooner on PostgreSQL, whose replicas are told of a change).
const REFRESH: Duration = Duration::from_secs(2);
/// How often rate limits that are full again are forgotten (in memory, or in the shared store).
const PRUNE_RATE_LIMITS: Duration = Duration::from_secs(60);

pub struct Running {
    pub audit: AuditHandle,
    pub hub: Option<airlock_approvals::Hub>,
    pub proxy_addr: SocketAddr,
    pub control_addr: SocketAddr,
    /// `gateway.postgres_listen`, bound.
    pub postgres_addr: Option<SocketAddr>,
    pub reloader: Arc<crate::reload::Reloader>,
    pub gateway: Arc<GatewayState>,
    tasks: Vec<JoinHandle<()>>,
    writer: JoinHandle<()>,
}

impl Running {
    /// Stops serving, then commits every audit record and a final signed checkpoint.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(h) = &self.hub {
            h.shutdown().await;
        }
        self.audit.shutdown().await.context("could not flush the audit log")?;
        let _ = self.writer.await;
        Ok(())
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {what} (is another airlock running?)"))
}

/// One Unix socket per declared agent, for `airlock run`'s relay: the socket is the agent's
/// identity, so its directory is the operator's alone (0700). The socket itself is 0666
/// because the relay runs as an unprivileged user inside its sandbox.
pub(crate) fn bind_agent_socket(path: &Path, agent: &str) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().context("agent socket path has no parent")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "another airlock is serving agent {agent} at {} (is another airlock running on this data_dir?)",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove the stale socket {}", path.display())),
    }
    let listener = UnixListener::bind(path).with_context(|| {
        format!(
            "cannot listen on {} for agent {agent} (a Unix socket path is limited to 107 bytes; \
             a shorter gateway.data_dir helps)",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(listener)
}

pub async fn serve(cfg: &Path) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Watched before the listeners are announced: a signal sent as soon as they are is handled.
    let mut term = signal(SignalKind::terminate()).ok();
    let hup = signal(SignalKind::hangup()).ok();
    let home = Home::load(cfg)?;
    let opened = home.open().await?;
    let proxy = bind(home.config.gateway.listen, "agents' proxy").await?;
    let control = bind(home.config.gateway.control, "control plane").await?;
    let running = start(&home, opened, proxy, control).await?;
    match running.postgres_addr {
        Some(pg) => eprintln!(
            "airlock: proxy on {}, control plane on {}, databases on {pg}",
            running.proxy_addr, running.control_addr
        ),
        None => eprintln!(
            "airlock: proxy on {}, control plane on {}",
            running.proxy_addr, running.control_addr
        ),
    }
    eprintln!("airlock: store: {}", home.store.describe());
    until_stopped(&running.reloader, &mut term, hup).await;
    let cut = drain(&running.gateway, home.config.gateway.drain_timeout, &mut term).await;
    eprintln!("airlock: shutting down");
    running.shutdown().await?;
    match cut {
        Drained::Idle | Drained::TimedOut => Ok(()),
        Drained::Interrupted(open) => {
            anyhow::bail!("stopped at once by a second signal; {open} connection(s) were cut")
        }
    }
}

enum Drained {
    Idle,
    TimedOut,
    /// A second signal; how many connections were still open.
    Interrupted(usize),
}

/// Stops accepting, lets requests in flight finish (held approvals are abandoned: 503 with
/// `Retry-After`) until no connection is open, `timeout` passes, or a second signal comes.
async fn drain(gateway: &GatewayState, timeout: Duration, term: &mut Option<tokio::signal::unix::Signal>) -> Drained {
    gateway.drain.begin();
    // Announced once no listener accepts any more (bounded: a wedged accept loop must not
    // hold up the stop).
    let _ = tokio::time::timeout(Duration::from_secs(5), gateway.drain.closed()).await;
    eprintln!(
        "airlock: stopping: no new connections; {} open, given up to {}s to finish (gateway.drain_timeout); \
         a second signal stops at once",
        gateway.drain.open(),
        timeout.as_secs()
    );
    tokio::select! {
        () = gateway.drain.idle() => Drained::Idle,
        () = tokio::time::sleep(timeout) => {
            eprintln!(
                "airlock: gateway.drain_timeout ({}s) passed with {} connection(s) open; they are cut",
                timeout.as_secs(),
                gateway.drain.open()
            );
            Drained::TimedOut
        }
        () = stop_signal(term) => Drained::Interrupted(gateway.drain.open()),
    }
}

/// SIGINT or SIGTERM (SIGINT only when SIGTERM could not be watched).
async fn stop_signal(term: &mut Option<tokio::signal::unix::Signal>) {
    match term {
        Some(term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Waits for SIGINT or SIGTERM; each SIGHUP meanwhile reloads the policy.
async fn until_stopped(
    reloader: &crate::reload::Reloader,
    term: &mut Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
) {
    let Some(mut hup) = hup else {
        return stop_signal(term).await;
    };
    loop {
        tokio::select! {
            () = stop_signal(term) => return,
            _ = hup.recv() => match reloader.reload("signal SIGHUP", true).await {
                Ok(r) => eprintln!(
                    "airlock: policy reloaded ({} added, {} removed, {} changed)",
                    r.added.len(), r.removed.len(), r.changed.len()
                ),
                Err(e) => eprintln!("airlock: policy reload refused: {e}"),
            },
        }
    }
}

/// Agents and unsealed secret values, unless their fingerprint equals `unchanged_from`
/// (then `None`: nothing is decrypted just to find nothing changed).
pub(crate) async fn identities(
    cfg: &Config,
    store: &Store,
    vault: &Vault,
    unchanged_from: Option<&str>,
) -> anyhow::Result<Option<(Identities, String)>> {
    let rows = store.list_agents().await?;
    let secret_rows = store.list_secrets().await?;
    let fingerprint = format!(
        "{:?}|{:?}",
        rows.iter().map(|r| (&r.name, &r.token_hash)).collect::<Vec<_>>(),
        secret_rows
            .iter()
            .map(|r| (&r.name, r.version, &r.key_id))
            .collect::<Vec<_>>()
    );
    if unchanged_from == Some(fingerprint.as_str()) {
        return Ok(None);
    }
    // Every declared agent, and each issued one a glob names (`[[agents]] name = "ag-*"`) with
    // that glob's grants.
    let mut declared: Vec<(String, Vec<String>)> = cfg
        .agents
        .iter()
        .filter(|a| !a.is_glob())
        .map(|a| (a.name.clone(), a.secrets.clone()))
        .collect();
    for r in &rows {
        if !declared.iter().any(|(n, _)| n == &r.name)
            && let Some(a) = cfg.agent(&r.name)
        {
            declared.push((r.name.clone(), a.secrets.clone()));
        }
    }
    let tokens: Vec<(String, [u8; 32])> = rows
        .iter()
        .filter_map(|r| Some((r.name.clone(), <[u8; 32]>::try_from(r.token_hash.as_slice()).ok()?)))
        .collect();
    let mut values = HashMap::new();
    // A dynamic credential's vault entry (refresh token, App key) is never a value to inject.
    let statics = secret_rows
        .iter()
        .filter(|r| cfg.secrets.get(&r.name).is_some() && cfg.credential(&r.name).is_none());
    for r in statics {
        let v = vault
            .open(&sealed(r))
            .with_context(|| format!("cannot unseal secret {}", r.name))?;
        values.insert(r.name.clone(), v);
    }
    Ok(Some((
        Identities::build(&declared, &tokens, &cfg.secrets, values),
        fingerprint,
    )))
}

/// Reads agents and secrets again now: after the OneCLI API creates an agent, and when the CLI
/// (`agent add|rm`, `secret set|rm`) says it changed them.
fn refresher(cfg: &Config, store: &Store, vault: &Arc<Vault>, state: &Arc<GatewayState>) -> airlock_web::Refresh {
    let (cfg, store, vault, state) = (cfg.clone(), store.clone(), vault.clone(), state.clone());
    Arc::new(move || {
        let (cfg, store, vault, state) = (cfg.clone(), store.clone(), vault.clone(), state.clone());
        Box::pin(async move {
            match identities(&cfg, &store, &vault, None).await {
                Ok(Some((ids, _))) => state.set_identities(ids),
                Ok(None) => {}
                Err(e) => {
                    let why = format!(
                        "could not load agents and secrets again from the store: {e:#}; the previous ones stay in force"
                    );
                    tracing::warn!("{why}");
                    return Err(why);
                }
            }
            Ok(())
        }) as airlock_web::BoxFuture<'static, Result<(), String>>
    })
}

/// What the store announced.
enum Announced {
    /// Agents or secrets changed, the notifications had a gap, or [`REFRESH`] passed (the
    /// polling fallback): read them again.
    Identities,
    /// Another replica reloaded its policy.
    Policy,
}

/// Waits for the next announcement that concerns this loop, or [`REFRESH`].
async fn announced(listener: &mut Option<airlock_store::Listener>) -> Announced {
    let Some(l) = listener else {
        tokio::time::sleep(REFRESH).await;
        return Announced::Identities;
    };
    let wait = async {
        loop {
            match l.recv().await {
                Ok(airlock_store::Heard::Topic(t)) if t == airlock_store::POLICY => return Announced::Policy,
                Ok(airlock_store::Heard::Topic(t)) if t != airlock_store::IDENTITIES => continue,
                Ok(_) => return Announced::Identities,
                // Unreachable store: the timer decides.
                Err(_) => std::future::pending::<()>().await,
            }
        }
    };
    tokio::time::timeout(REFRESH, wait)
        .await
        .unwrap_or(Announced::Identities)
}

/// What agents' requests must never reach, whatever `allow_private` says (invariant 1): the
/// two listeners and a PostgreSQL store's server. A server on this host counts as listening on
/// every local address of its port (it may be bound to all of them).
async fn own_addresses(store: &StoreAt, proxy: SocketAddr, control: SocketAddr) -> Vec<OwnAddr> {
    let mut own = vec![
        OwnAddr {
            addr: proxy,
            what: "proxy listener",
        },
        OwnAddr {
            addr: control,
            what: "control plane",
        },
    ];
    let StoreAt::Url(url) = store else { return own };
    // The store opened with this URL, so it parses; a Unix socket path does not resolve.
    let Ok(opts) = url.parse::<sqlx::postgres::PgConnectOptions>() else {
        return own;
    };
    let port = opts.get_port();
    match tokio::net::lookup_host((opts.get_host(), port)).await {
        Ok(addrs) => own.extend(addrs.map(|a| OwnAddr {
            addr: if is_local_address(a) {
                SocketAddr::from(([0, 0, 0, 0], port))
            } else {
                a
            },
            what: "store",
        })),
        Err(e) => tracing::debug!(error = %e, "the store's host does not resolve; only the listeners are refused"),
    }
    own
}

/// Starts everything on already-bound listeners (tests and the demo use port 0).
pub async fn start(home: &Home, opened: Opened, proxy: TcpListener, control: TcpListener) -> anyhow::Result<Running> {
    let cfg = &home.config;
    let ca_cert = std::fs::read_to_string(home.ca_cert_path())
        .with_context(|| format!("cannot read {}", home.ca_cert_path().display()))?;
    let ca_key = std::fs::read_to_string(home.ca_key_path())
        .with_context(|| format!("cannot read {}", home.ca_key_path().display()))?;
    let ca = airlock_tls::CertificateAuthority::load(&ca_cert, &ca_key).context("cannot load the local CA")?;
    let leaves = Arc::new(airlock_tls::LeafCache::new(Arc::new(ca), 1024));

    let mut extra = Vec::new();
    for p in &cfg.gateway.upstream_ca {
        let pem = std::fs::read(p).with_context(|| format!("gateway.upstream_ca: cannot read {}", p.display()))?;
        extra.extend(
            airlock_tls::load_pem_certs(&pem).with_context(|| format!("gateway.upstream_ca: {}", p.display()))?,
        );
    }
    let tls = airlock_gateway::upstream::client_tls_config(&extra).context("upstream TLS configuration")?;
    let proxy_addr = proxy.local_addr()?;
    let control_addr = control.local_addr()?;
    let own = own_addresses(&home.store, proxy_addr, control_addr).await;
    let connector = || GuardedConnector::new(cfg.gateway.allow_private.clone()).never_dialing(own.clone());
    let client = build_guarded_client(tls.clone(), connector(), true);
    let client_h1 = build_guarded_client(tls, connector(), false);

    let Opened { store, vault, signer } = opened;
    let vault = Arc::new(vault);
    let signer = Arc::new(signer);
    let sign: Signer = {
        let s = signer.clone();
        Arc::new(move |msg: &[u8]| (s.sign(msg).to_vec(), s.public_key().to_vec()))
    };
    // A store that stops answering is refused within `[store] timeout`: connections are
    // acquired, and audit commits land, within it or the gateway answers 503.
    let timeout = std::time::Duration::from_secs(cfg.store.timeout_secs);
    let store = store.bounded(timeout);
    let opts = WriterOptions {
        checkpoint_every: 1000,
        commit_timeout: timeout,
        checkpoint_interval: std::time::Duration::from_secs(cfg.store.checkpoint_interval_secs),
        anchor: Some(cfg.gateway.data_dir.join(airlock_store::anchor::ANCHOR_FILE)),
        ..WriterOptions::default()
    };
    let (audit, writer) = AuditWriter::start_with(store.clone(), sign, opts).await?;
    let (ids, mut fingerprint) = identities(cfg, &store, &vault, None)
        .await?
        .context("agents and secrets could not be loaded")?;
    let hub = crate::approvals::start(cfg, &store, &vault, &audit).await?;
    let mut gateway = GatewayState::new(
        cfg.policy.clone(),
        cfg.secrets.clone(),
        ids,
        leaves,
        client,
        client_h1,
        audit.clone(),
    );
    // Replicas sharing the store share their rate limits; a gateway with its own counts in memory.
    if store.is_shared() {
        gateway = gateway.with_shared_rate_limits(store.clone());
    }
    if let Some(hub) = &hub {
        gateway = gateway.with_approvals(airlock_gateway::Approvals {
            hub: hub.clone(),
            max_body: cfg.approvals.max_body,
            max_held_per_agent: cfg.approvals.max_held_per_agent,
        });
    }
    let tokens = airlock_credentials::Tokens::new(cfg, store.clone(), vault.clone()).map(Arc::new);
    let state = Arc::new(gateway.with_timeouts(cfg.gateway.timeouts).with_tokens(tokens));

    let mut tasks = vec![tokio::spawn(airlock_gateway::serve(proxy, state.clone()))];
    let databases = crate::databases::start(home, &store, &vault, state.clone()).await?;
    tasks.extend(databases.tasks);
    let postgres_addr = databases.addr;
    for a in cfg.agents.iter().filter(|a| !a.is_glob()) {
        let listener = bind_agent_socket(&home.agent_socket_path(&a.name), &a.name)?;
        tasks.push(tokio::spawn(airlock_gateway::serve_agent_socket(
            listener,
            a.name.clone(),
            state.clone(),
        )));
    }
    let token_hash = store.get_meta("control_token_sha256").await?.unwrap_or_default();
    let reloader = Arc::new(crate::reload::Reloader::new(
        cfg.clone(),
        state.clone(),
        hub.clone(),
        audit.clone(),
        store.clone(),
    ));
    reloader.record_hash().await;
    let refresh = refresher(cfg, &store, &vault, &state);
    let onecli = crate::onecli::api(cfg, &store, &vault, ca_cert.clone(), refresh.clone()).await?;
    let control_state = airlock_web::ControlState {
        gateway: state.clone(),
        store: store.clone(),
        token_hash,
        hub: hub.clone(),
        reload: Some(reloader.clone()),
        version: crate::VERSION.to_string(),
        started_ms: airlock_gateway::now_ms(),
        onecli,
        refresh_identities: Some(refresh),
    };
    tasks.push(tokio::spawn(async move {
        if let Err(e) = airlock_web::serve(control, control_state).await {
            tracing::error!(error = %e, "control plane stopped");
        }
    }));
    if cfg.policy.rules.iter().any(|r| r.rate.is_some()) {
        let limits = state.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(PRUNE_RATE_LIMITS);
            loop {
                every.tick().await;
                limits.limiter.prune(airlock_gateway::now_ms()).await;
            }
        }));
    }
    let refresh_state = state.clone();
    let cfg = cfg.clone();
    // Another replica's `agent add` / `secret set` / policy reload is announced through the
    // store: reload at once.
    let mut listener = store.listen().await.ok();
    let follower = reloader.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            if let Announced::Policy = announced(&mut listener).await {
                follower.follow().await;
                continue;
            }
            match identities(&cfg, &store, &vault, Some(&fingerprint)).await {
                Ok(Some((ids, fp))) => {
                    fingerprint = fp;
                    refresh_state.set_identities(ids);
                    tracing::info!("agents and secrets reloaded");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not reload agents and secrets; keeping the previous ones"),
            }
        }
    }));
    Ok(Running {
        audit,
        hub,
        proxy_addr,
        control_addr,
        postgres_addr,
        reloader,
        gateway: state,
        tasks,
        writer,
    })
}
