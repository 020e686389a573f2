//! `airlock run` (an agent in a sandbox whose only way out is the gateway) and `airlock
//! relay` (that way out, running inside the sandbox).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock_sandbox::env::{DatabasePort, agent_env, database_env, parse_env};
use airlock_sandbox::launch::{Launch, Runtime, detect, owner};
use airlock_sandbox::mounts::{Forbidden, Operator};
use airlock_sandbox::runtime::{Limits, PROXY_URL, RELAY_DATABASE_LISTEN, SANDBOX_CA, Spec};
use anyhow::{Context, bail};

use crate::home::Home;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The declared agent to run as (its placeholders and policy apply).
    #[arg(long)]
    agent: String,
    /// docker, podman or bwrap (default: docker if its engine answers, else podman, else bwrap).
    #[arg(long)]
    runtime: Option<String>,
    /// Container image (docker/podman); build the default with `bash images/build.sh`.
    #[arg(long, default_value = "airlock-agent:latest")]
    image: String,
    /// SRC:DST[:ro], checked: credentials, .env files and airlock's own state are refused.
    #[arg(long = "mount", value_name = "SRC:DST[:ro]")]
    mounts: Vec<String>,
    /// A host directory the agent works in, writable, at the same path inside.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// K=V for the agent (not the proxy, CA or placeholder variables in any case, no *_PROXY,
    /// no loader variable: LD_*, GCONV_PATH, GLIBC_TUNABLES).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Memory limit (docker/podman), e.g. 2g.
    #[arg(long)]
    memory: Option<String>,
    /// CPU limit (docker/podman), e.g. 1.5.
    #[arg(long)]
    cpus: Option<String>,
    /// Process limit (docker/podman).
    #[arg(long, default_value_t = 512)]
    pids: u32,
    /// The agent's command.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(cfg: &Path, a: RunArgs) -> anyhow::Result<ExitCode> {
    let home = Home::load(cfg)?;
    let Some(agent) = home.config.agent(&a.agent) else {
        bail!(
            "agent {:?} is not declared in {}: add an [[agents]] entry with its name and secrets",
            a.agent,
            cfg.display()
        );
    };
    let forbidden = Forbidden::new(
        &Operator::from_env(),
        home.data_dir(),
        &std::fs::canonicalize(cfg).unwrap_or_else(|_| cfg.to_path_buf()),
    );
    let mut mounts = Vec::new();
    for m in &a.mounts {
        mounts.push(forbidden.check(m)?);
    }
    let workdir = match &a.workdir {
        Some(w) => {
            let w =
                std::fs::canonicalize(w).with_context(|| format!("--workdir {}: no such directory", w.display()))?;
            let spec = format!("{0}:{0}", w.display());
            forbidden
                .check(&spec)
                .map_err(|e| anyhow::anyhow!("--workdir {}: {e}", w.display()))?;
            Some(w)
        }
        None => None,
    };
    let mut placeholders: Vec<(String, String)> = agent
        .secrets
        .iter()
        .filter_map(|s| home.config.secrets.get(s))
        .filter_map(|d| Some((d.env.clone()?, d.placeholder.clone())))
        .collect();
    // AWS SDKs sign with a key id and a secret key: both are placeholders (the key id is `env`).
    for s in &agent.secrets {
        if let Some(airlock_config::CredentialKind::Aws(aws)) = home.config.credential(s).map(|c| &c.kind) {
            placeholders.push(("AWS_SECRET_ACCESS_KEY".into(), aws.secret_placeholder.clone()));
        }
    }
    // Databases: reached through the relay's second port; the variables hold placeholders only.
    let databases: Vec<(String, String)> = agent
        .databases
        .iter()
        .filter_map(|d| home.config.databases.iter().find(|c| c.name == *d))
        .map(|c| (c.name.clone(), c.placeholder.clone()))
        .collect();
    let db_port: SocketAddr = RELAY_DATABASE_LISTEN.parse()?;
    let host = db_port.ip().to_string();
    let at = DatabasePort {
        host: &host,
        port: db_port.port(),
        ca_bundle: SANDBOX_CA,
    };
    placeholders.extend(database_env(&a.agent, &databases, at)?);
    let mut extra = Vec::new();
    for e in &a.env {
        extra.push(parse_env(e)?);
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut env = agent_env(PROXY_URL, SANDBOX_CA, &placeholders, &extra)?;
    let mut default = |k: &str, v: String| {
        if !env.iter().any(|(e, _)| e == k) {
            env.push((k.to_string(), v));
        }
    };
    default(
        "HOME",
        workdir.as_ref().map_or("/tmp".into(), |w| w.display().to_string()),
    );
    // The one variable of the operator's that enters the sandbox: the terminal's type.
    if tty && let Ok(term) = std::env::var("TERM") {
        default("TERM", term);
    }

    let socket = std::path::absolute(home.agent_socket_path(&a.agent))?;
    if std::os::unix::net::UnixStream::connect(&socket).is_err() {
        bail!(
            "the gateway is not serving agent {:?} (nothing listens at {}): start `airlock serve` first",
            a.agent,
            socket.display()
        );
    }
    let database_socket = if databases.is_empty() {
        None
    } else {
        let socket = std::path::absolute(home.agent_database_socket_path(&a.agent))?;
        if std::os::unix::net::UnixStream::connect(&socket).is_err() {
            bail!(
                "the gateway is not serving agent {:?}'s databases (nothing listens at {}): restart `airlock serve` \
                 with this configuration",
                a.agent,
                socket.display()
            );
        }
        Some(socket)
    };
    let ca_bundle = std::path::absolute(write_ca_bundle(&home)?)?;
    let requested = a
        .runtime
        .as_deref()
        .map(Runtime::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let runtime = detect(requested).await?;
    // bubblewrap starts from an empty environment; a container image brings its own PATH.
    if runtime == Runtime::Bwrap && !env.iter().any(|(k, _)| k == "PATH") {
        env.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }
    let spec = Spec {
        run_id: run_id(),
        owner: owner(),
        image: a.image,
        workdir,
        mounts,
        env,
        limits: Limits {
            memory: a.memory,
            cpus: a.cpus,
            pids: a.pids,
            rlimits: None,
        },
        tty,
        command: a.command,
    };
    tracing::debug!(runtime = runtime.name(), run = %spec.run_id, agent = %a.agent, "starting the sandbox");
    let exe = std::env::current_exe().context("cannot find the airlock binary (for the relay)")?;
    let code = airlock_sandbox::run(Launch {
        runtime,
        spec,
        gateway_socket: socket,
        database_socket,
        ca_bundle,
        exe,
    })
    .await?;
    Ok(exit(code))
}

/// The agent's status as ours (a status outside 0..=255 is a failure).
fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// 48 random bits as hex: part of container names and labels.
fn run_id() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

/// Where the system's trusted roots live, by distribution.
const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// System roots + the airlock CA, in the data directory (public data, readable by the
/// sandbox's user); rewritten only when it changes.
fn write_ca_bundle(home: &Home) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ca = std::fs::read_to_string(home.ca_cert_path())
        .with_context(|| format!("cannot read the airlock CA at {}", home.ca_cert_path().display()))?;
    let mut bundle = SYSTEM_ROOTS
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if !bundle.is_empty() && !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str("# airlock local CA\n");
    bundle.push_str(&ca);
    let dir = home.data_dir().join("sandbox");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("ca-bundle.pem");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(bundle.as_str()) {
        // Written aside and renamed: a concurrent run never mounts half a bundle.
        let tmp = dir.join(format!("ca-bundle.pem.{}", std::process::id()));
        std::fs::write(&tmp, &bundle).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(path)
}

#[derive(clap::Args)]
pub struct RelayArgs {
    /// Where the agent's proxy variables point (inside the sandbox).
    #[arg(long)]
    listen: SocketAddr,
    /// The gateway's socket for this agent, as mounted inside the sandbox.
    #[arg(long)]
    socket: PathBuf,
    /// The agent's database port (inside the sandbox), for an agent with databases.
    #[arg(long, requires = "database_socket")]
    database_listen: Option<SocketAddr>,
    /// The gateway's database socket for this agent, as mounted inside the sandbox.
    #[arg(long, requires = "database_listen")]
    database_socket: Option<PathBuf>,
    /// An inherited pipe carrying the operator's signals for the agent.
    #[arg(long)]
    signals_fd: Option<i32>,
    /// The agent to start and wait for (bubblewrap); none: relay until terminated.
    #[arg(last = true)]
    command: Vec<String>,
}

pub async fn relay(a: RelayArgs) -> anyhow::Result<ExitCode> {
    let code = airlock_sandbox::relay::run(airlock_sandbox::relay::Relay {
        listen: a.listen,
        socket: a.socket,
        database: a.database_listen.zip(a.database_socket),
        signals_fd: a.signals_fd,
        command: a.command,
    })
    .await
    .context("relay")?;
    Ok(exit(code))
}
