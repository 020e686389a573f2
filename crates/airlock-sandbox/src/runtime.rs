//! The command lines `airlock run` uses for each runtime, generated from one description of
//! the sandbox. Pure: launching, networks and cleanup live in the binary.

use std::path::PathBuf;

use crate::mounts::Mount;

/// Every sandbox carries this label (and the run id as its value): stale ones are swept by
/// the next `airlock run` even after a crash.
pub const LABEL: &str = "airlock.run";

/// Resource limits (`--memory 2g --cpus 1 --pids 512`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub pids: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: None,
            cpus: None,
            pids: 512,
        }
    }
}

/// One agent's sandbox, independent of the runtime.
#[derive(Debug, Clone)]
pub struct Spec {
    pub run_id: String,
    pub image: String,
    pub workdir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub env: Vec<(String, String)>,
    pub limits: Limits,
    pub tty: bool,
    pub command: Vec<String>,
}

/// `docker run` / `podman run` for the agent container, on the run's `--internal` network
/// (no route out; the relay container is its only peer).
pub fn container_run(engine: &str, s: &Spec, network: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![engine.into(), "run".into(), "--rm".into()];
    a.push("-i".into());
    if s.tty {
        a.push("-t".into());
    }
    a.extend([
        format!("--name=airlock-agent-{}", s.run_id),
        format!("--label={LABEL}={}", s.run_id),
        format!("--network={network}"),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        "--read-only".into(),
        "--tmpfs=/tmp:rw,nosuid,nodev,size=512m".into(),
        "--user=65534:65534".into(),
        format!("--pids-limit={}", s.limits.pids),
        // No DNS of its own: names are resolved by the gateway, behind the proxy.
        "--dns=0.0.0.0".into(),
    ]);
    if let Some(m) = &s.limits.memory {
        a.push(format!("--memory={m}"));
    }
    if let Some(c) = &s.limits.cpus {
        a.push(format!("--cpus={c}"));
    }
    for m in &s.mounts {
        let ro = if m.read_only { ",readonly" } else { "" };
        a.push(format!(
            "--mount=type=bind,source={},target={}{ro}",
            m.src.display(),
            m.dst.display()
        ));
    }
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

/// `docker network create` for the run: internal (no gateway, no NAT), labelled.
pub fn network_create(engine: &str, run_id: &str) -> Vec<String> {
    vec![
        engine.into(),
        "network".into(),
        "create".into(),
        "--internal".into(),
        format!("--label={LABEL}={run_id}"),
        format!("airlock-net-{run_id}"),
    ]
}

/// bubblewrap: a new network namespace with only loopback (the relay inside forwards
/// 127.0.0.1:PORT to the gateway's Unix socket, bind-mounted at `socket_dst`), system
/// directories read-only, the workdir writable, minimal /proc and /dev.
pub fn bwrap(s: &Spec, relay: &[String], socket_src: &str, socket_dst: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "bwrap".into(),
        "--unshare-all".into(), // user, pid, ipc, uts, cgroup and network namespaces
        "--die-with-parent".into(),
        "--new-session".into(),
        "--clearenv".into(),
    ];
    for dir in ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"] {
        a.extend(["--ro-bind-try".into(), dir.into(), dir.into()]);
    }
    a.extend([
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
        "--tmpfs".into(),
        "/tmp".into(),
        "--bind".into(),
        socket_src.into(),
        socket_dst.into(),
    ]);
    for m in &s.mounts {
        let flag = if m.read_only { "--ro-bind" } else { "--bind" };
        a.extend([flag.into(), m.src.display().to_string(), m.dst.display().to_string()]);
    }
    if let Some(w) = &s.workdir {
        a.extend(["--chdir".into(), w.display().to_string()]);
    }
    for (k, v) in &s.env {
        a.extend(["--setenv".into(), k.clone(), v.clone()]);
    }
    // The relay runs inside the namespace and starts the agent as its child (`relay` ends
    // with its own `--`); both die with bwrap.
    a.push("--".into());
    a.extend(relay.iter().cloned());
    a.extend(s.command.iter().cloned());
    a
}

/// Apple's `container` CLI (macOS, micro-VM per container). Generated and unit-tested only:
/// no macOS host was available to run it.
pub fn apple_container(s: &Spec, network: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["container".into(), "run".into(), "--rm".into(), "-i".into()];
    if s.tty {
        a.push("-t".into());
    }
    a.extend([
        format!("--name=airlock-agent-{}", s.run_id),
        format!("--label={LABEL}={}", s.run_id),
        format!("--network={network}"),
    ]);
    if let Some(m) = &s.limits.memory {
        a.push(format!("--memory={m}"));
    }
    if let Some(c) = &s.limits.cpus {
        a.push(format!("--cpus={c}"));
    }
    for m in &s.mounts {
        let ro = if m.read_only { ",readonly" } else { "" };
        a.push(format!(
            "--mount=type=bind,source={},target={}{ro}",
            m.src.display(),
            m.dst.display()
        ));
    }
    for (k, v) in &s.env {
        a.push("-e".into());
        a.push(format!("{k}={v}"));
    }
    a.push(s.image.clone());
    a.extend(s.command.iter().cloned());
    a
}
