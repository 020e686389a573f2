//! The command lines `airlock run` uses for each runtime, generated from one description of
//! the sandbox. Pure: launching, networks and cleanup live in the binary.

use std::path::PathBuf;

use crate::mounts::Mount;

/// Every sandbox carries this label (and the run id as its value): stale ones are swept by
/// the next `airlock run` even after a crash.
pub const LABEL: &str = "airlock.run";
/// The `airlock run` process that owns a container (`PID:START_TIME`), so a sweep removes
/// only what a dead run left behind, never a concurrent run's containers.
pub const OWNER_LABEL: &str = "airlock.owner";

/// Where the sandbox finds airlock's pieces (bind-mounted, read-only but for the socket).
pub const SANDBOX_DIR: &str = "/run/airlock";
/// The gateway's socket for this agent, as the relay sees it.
pub const SANDBOX_SOCKET: &str = "/run/airlock/gateway.sock";
/// The combined CA bundle (system roots + the airlock CA).
pub const SANDBOX_CA: &str = "/run/airlock/ca.pem";
/// The airlock binary inside a bubblewrap sandbox (it runs the relay).
pub const SANDBOX_EXE: &str = "/run/airlock/airlock";
/// The relay's listener: loopback of the sandbox's own network namespace.
pub const RELAY_LISTEN: &str = "127.0.0.1:3128";
/// The proxy URL the agent is given.
pub const PROXY_URL: &str = "http://127.0.0.1:3128";
/// The gateway's database socket for this agent, as the relay sees it (agents with databases).
pub const SANDBOX_DATABASE_SOCKET: &str = "/run/airlock/postgres.sock";
/// The relay's PostgreSQL port on the sandbox's loopback (PostgreSQL's default port, so tools
/// that assume it need no setting).
pub const RELAY_DATABASE_LISTEN: &str = "127.0.0.1:5432";

/// Resource limits (`--memory 2g --cpus 1 --pids 512`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub pids: u32,
    /// The limits `airlock run` itself runs under, filled in at launch (Podman only: see
    /// [`Rlimits`]).
    pub rlimits: Option<Rlimits>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: None,
            cpus: None,
            pids: 512,
            rlimits: None,
        }
    }
}

/// Hard limits of the process starting a Podman sandbox (`None`: unlimited). Rootful Podman
/// asks for 2^20 open files (and, once any `--ulimit` is given, 2^20 processes) whatever its
/// own limits are, and the container fails to start where root lacks CAP_SYS_RESOURCE (inside
/// a container or a CI VM). Docker's containers inherit the daemon's limits, and rootless
/// Podman's its own; a Podman sandbox gets those of `airlock run` — what rootless Podman does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimits {
    pub nofile: Option<u64>,
    pub nproc: Option<u64>,
}

/// Podman lowers its own process limit to this before starting a container (measured with
/// strace, Podman 4.3); more than it has cannot be granted. The sandbox's own cap on processes
/// is `--pids-limit`: RLIMIT_NPROC counts every process of the (shared) user on the host.
pub const PODMAN_NPROC: u64 = 32768;

/// One agent's sandbox, independent of the runtime.
#[derive(Debug, Clone)]
pub struct Spec {
    pub run_id: String,
    /// `PID:START_TIME` of the `airlock run` process ([`OWNER_LABEL`]).
    pub owner: String,
    pub image: String,
    /// A host directory the agent works in, mounted read-write at the same path.
    pub workdir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub env: Vec<(String, String)>,
    pub limits: Limits,
    pub tty: bool,
    pub command: Vec<String>,
}

/// Podman copies the proxy variables of its own environment into every container unless told
/// not to; airlock starts it without them, and says so too. Its limits: see [`Rlimits`].
fn engine_flags(engine: &str, limits: &Limits) -> Vec<String> {
    if engine != "podman" {
        return Vec::new();
    }
    let mut a = vec!["--http-proxy=false".to_string()];
    if let Some(r) = limits.rlimits {
        if let Some(n) = r.nofile {
            a.push(format!("--ulimit=nofile={n}:{n}"));
        }
        let n = r.nproc.map_or(PODMAN_NPROC, |n| n.min(PODMAN_NPROC));
        a.push(format!("--ulimit=nproc={n}:{n}"));
    }
    a
}

fn labels(s: &Spec) -> [String; 2] {
    [
        format!("--label={LABEL}={}", s.run_id),
        format!("--label={OWNER_LABEL}={}", s.owner),
    ]
}

fn bind_mounts(s: &Spec) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(w) = &s.workdir {
        a.push(format!("--mount=type=bind,source={0},target={0}", w.display()));
    }
    for m in &s.mounts {
        let ro = if m.read_only { ",readonly" } else { "" };
        a.push(format!(
            "--mount=type=bind,source={},target={}{ro}",
            m.src.display(),
            m.dst.display()
        ));
    }
    a
}

/// The relay container: no network at all (`--network=none`: loopback only), the
/// gateway's socket bind-mounted, the relay listening on its loopback. The agent
/// container joins this network namespace, so the relay is all it can reach.
pub fn relay_container(
    engine: &str,
    s: &Spec,
    image: &str,
    gateway_socket: &str,
    database_socket: Option<&str>,
) -> Vec<String> {
    let mut a: Vec<String> = vec![engine.into(), "run".into(), "--rm".into()];
    a.push(format!("--name=airlock-relay-{}", s.run_id));
    a.extend(labels(s));
    a.extend(engine_flags(engine, &s.limits));
    a.extend([
        "--network=none".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        "--read-only".into(),
        "--user=65534:65534".into(),
        "--pids-limit=64".into(),
        "--memory=128m".into(),
        format!("--mount=type=bind,source={gateway_socket},target={SANDBOX_SOCKET}"),
    ]);
    if let Some(db) = database_socket {
        a.push(format!(
            "--mount=type=bind,source={db},target={SANDBOX_DATABASE_SOCKET}"
        ));
    }
    a.extend([
        image.into(),
        "relay".into(),
        format!("--listen={RELAY_LISTEN}"),
        format!("--socket={SANDBOX_SOCKET}"),
    ]);
    a.extend(database_relay_args(database_socket.is_some()));
    a
}

/// The relay's database arguments, when the agent has databases.
fn database_relay_args(database: bool) -> Vec<String> {
    if !database {
        return Vec::new();
    }
    vec![
        format!("--database-listen={RELAY_DATABASE_LISTEN}"),
        format!("--database-socket={SANDBOX_DATABASE_SOCKET}"),
    ]
}

/// `docker run` / `podman run` for the agent container, in the relay container's network
/// namespace (`netns_of`): loopback only, where the relay listens. Hardened: no
/// capabilities, no privilege gain, read-only root with a tmpfs /tmp, an unprivileged
/// user, limits, and no mount but the checked ones and the CA bundle.
pub fn container_run(engine: &str, s: &Spec, netns_of: &str, ca_bundle: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![engine.into(), "run".into(), "--rm".into()];
    a.push("-i".into());
    if s.tty {
        a.push("-t".into());
    }
    a.push(format!("--name=airlock-agent-{}", s.run_id));
    a.extend(labels(s));
    a.extend(engine_flags(engine, &s.limits));
    a.extend([
        format!("--network=container:{netns_of}"),
        // A minimal init as PID 1: signals with no handler still reach the agent, and
        // zombies are reaped.
        "--init".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        "--read-only".into(),
        "--tmpfs=/tmp:rw,nosuid,nodev,size=512m".into(),
        "--user=65534:65534".into(),
        format!("--pids-limit={}", s.limits.pids),
        format!("--mount=type=bind,source={ca_bundle},target={SANDBOX_CA},readonly"),
    ]);
    if let Some(m) = &s.limits.memory {
        a.push(format!("--memory={m}"));
    }
    if let Some(c) = &s.limits.cpus {
        a.push(format!("--cpus={c}"));
    }
    a.extend(bind_mounts(s));
    if let Some(w) = &s.workdir {
        a.push(format!("--workdir={}", w.display()));
    }
    for (k, v) in &s.env {
        a.push("-e".into());
        a.push(format!("{k}={v}"));
    }
    a.push(s.image.clone());
    a.extend(s.command.iter().cloned());
    a
}

/// What bubblewrap needs from the host.
#[derive(Debug, Clone)]
pub struct BwrapHost {
    /// The airlock binary (it runs the relay inside).
    pub exe: PathBuf,
    /// The gateway's socket for this agent.
    pub gateway_socket: PathBuf,
    /// The gateway's database socket for this agent, when it has databases.
    pub database_socket: Option<PathBuf>,
    /// The combined CA bundle.
    pub ca_bundle: PathBuf,
    /// The inherited pipe the relay reads forwarded signals from.
    pub signals_fd: i32,
    /// Top-level directories that are symlinks on the host (merged /usr), as (path, target).
    pub links: Vec<(String, String)>,
}

/// Top-level system directories shared read-only with a bubblewrap sandbox.
pub const BWRAP_SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];

/// The parts of /etc programs need to run; the rest (shadow, ssh host keys, sudoers,
/// credentials of system services) stays out.
pub const BWRAP_ETC: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "pki",
    "localtime",
    "timezone",
    "mime.types",
    "protocols",
    "services",
    "os-release",
    "terminfo",
    "profile",
    "bash.bashrc",
    "inputrc",
    "gitconfig",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
];

/// bubblewrap: new user, pid, ipc, uts, cgroup and network namespaces (the network one
/// holds only loopback), no capabilities, no nested user namespaces, an unprivileged uid,
/// system directories read-only, a minimal /etc, /proc and /dev of its own, a tmpfs /tmp,
/// the workdir writable. The relay runs inside, listens on the sandbox's loopback,
/// forwards to the gateway's bind-mounted socket and starts the agent as its child.
pub fn bwrap(s: &Spec, host: &BwrapHost) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "bwrap".into(),
        "--unshare-all".into(),
        "--unshare-user".into(),
        "--disable-userns".into(),
        "--uid".into(),
        "65534".into(),
        "--gid".into(),
        "65534".into(),
        "--cap-drop".into(),
        "ALL".into(),
        "--die-with-parent".into(),
        // Its own session: the agent cannot push keystrokes into the operator's terminal (TIOCSTI).
        "--new-session".into(),
        "--clearenv".into(),
    ];
    for dir in BWRAP_SYSTEM_DIRS {
        match host.links.iter().find(|(p, _)| p == dir) {
            Some((p, target)) => a.extend(["--symlink".into(), target.clone(), p.clone()]),
            None => a.extend(["--ro-bind-try".into(), dir.to_string(), dir.to_string()]),
        }
    }
    for f in BWRAP_ETC {
        let p = format!("/etc/{f}");
        a.extend(["--ro-bind-try".into(), p.clone(), p]);
    }
    a.extend([
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
        "--tmpfs".into(),
        "/tmp".into(),
        "--ro-bind".into(),
        host.exe.display().to_string(),
        SANDBOX_EXE.into(),
        "--bind".into(),
        host.gateway_socket.display().to_string(),
        SANDBOX_SOCKET.into(),
        "--ro-bind".into(),
        host.ca_bundle.display().to_string(),
        SANDBOX_CA.into(),
    ]);
    if let Some(db) = &host.database_socket {
        a.extend([
            "--bind".into(),
            db.display().to_string(),
            SANDBOX_DATABASE_SOCKET.into(),
        ]);
    }
    if let Some(w) = &s.workdir {
        a.extend(["--bind".into(), w.display().to_string(), w.display().to_string()]);
    }
    for m in &s.mounts {
        let flag = if m.read_only { "--ro-bind" } else { "--bind" };
        a.extend([flag.into(), m.src.display().to_string(), m.dst.display().to_string()]);
    }
    a.push("--chdir".into());
    a.push(s.workdir.as_ref().map_or("/tmp".into(), |w| w.display().to_string()));
    for (k, v) in &s.env {
        a.extend(["--setenv".into(), k.clone(), v.clone()]);
    }
    a.extend([
        "--".into(),
        SANDBOX_EXE.into(),
        "relay".into(),
        format!("--listen={RELAY_LISTEN}"),
        format!("--socket={SANDBOX_SOCKET}"),
        format!("--signals-fd={}", host.signals_fd),
    ]);
    a.extend(database_relay_args(host.database_socket.is_some()));
    a.push("--".into());
    a.extend(s.command.iter().cloned());
    a
}

/// Apple's `container` CLI (macOS, one lightweight VM per container). Generated and
/// unit-tested only: no macOS host was available to run it. `network` is a network with
/// no route out on which the relay listens (see docs/sandbox.md).
pub fn apple_container(s: &Spec, network: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["container".into(), "run".into(), "--rm".into(), "-i".into()];
    if s.tty {
        a.push("-t".into());
    }
    a.push(format!("--name=airlock-agent-{}", s.run_id));
    a.extend(labels(s));
    a.push(format!("--network={network}"));
    if let Some(m) = &s.limits.memory {
        a.push(format!("--memory={m}"));
    }
    if let Some(c) = &s.limits.cpus {
        a.push(format!("--cpus={c}"));
    }
    a.extend(bind_mounts(s));
    for (k, v) in &s.env {
        a.push("-e".into());
        a.push(format!("{k}={v}"));
    }
    a.push(s.image.clone());
    a.extend(s.command.iter().cloned());
    a
}
