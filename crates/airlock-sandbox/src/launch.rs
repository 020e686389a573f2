//! Launching a sandbox: which runtime, the run's owner (for sweeping what a crashed run
//! left behind), and passing the operator's signals on to the agent.

use std::path::PathBuf;
use std::process::Stdio;

use rustix::process::Signal;
use tokio::sync::mpsc;

use crate::runtime::Spec;

/// Where agents run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Podman,
    Bwrap,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Bwrap => "bwrap",
        }
    }
    pub fn parse(s: &str) -> Result<Runtime, String> {
        match s {
            "docker" => Ok(Runtime::Docker),
            "podman" => Ok(Runtime::Podman),
            "bwrap" | "bubblewrap" => Ok(Runtime::Bwrap),
            _ => Err(format!("--runtime {s:?}: expected docker, podman or bwrap")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the {runtime} runtime is not available: {why}")]
    Unavailable { runtime: &'static str, why: String },
    #[error(
        "no sandbox runtime is available ({0}); install Docker, Podman or bubblewrap — airlock never runs an agent unsandboxed"
    )]
    NoRuntime(String),
    #[error("image {image} is not available to {engine}; build it with `bash images/build.sh` or pass --image")]
    NoImage { engine: &'static str, image: String },
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
}

impl LaunchError {
    pub(crate) fn failed(what: impl Into<String>, detail: impl std::fmt::Display) -> LaunchError {
        LaunchError::Failed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// Everything a launch needs besides the sandbox description.
#[derive(Debug, Clone)]
pub struct Launch {
    pub runtime: Runtime,
    pub spec: Spec,
    /// The gateway's Unix socket for this agent (`airlock serve` listens on it).
    pub gateway_socket: PathBuf,
    /// The gateway's database socket for this agent, when it has databases.
    pub database_socket: Option<PathBuf>,
    /// System roots + the airlock CA, readable by the sandbox's user.
    pub ca_bundle: PathBuf,
    /// The airlock binary (the relay).
    pub exe: PathBuf,
}

/// The runtime to use: `requested` if it answers (an error otherwise, never a fallback),
/// else docker when its engine answers, else podman, else bwrap.
pub async fn detect(requested: Option<Runtime>) -> Result<Runtime, LaunchError> {
    if let Some(r) = requested {
        return probe(r)
            .await
            .map(|()| r)
            .map_err(|why| LaunchError::Unavailable { runtime: r.name(), why });
    }
    let mut tried = Vec::new();
    for r in [Runtime::Docker, Runtime::Podman, Runtime::Bwrap] {
        match probe(r).await {
            Ok(()) => return Ok(r),
            Err(why) => tried.push(format!("{}: {why}", r.name())),
        }
    }
    Err(LaunchError::NoRuntime(tried.join("; ")))
}

async fn probe(r: Runtime) -> Result<(), String> {
    let args: &[&str] = match r {
        Runtime::Docker | Runtime::Podman => &["version", "--format", "{{.Server.Version}}"],
        // Namespaces may be disabled even where bwrap is installed: try one.
        Runtime::Bwrap => &["--unshare-all", "--ro-bind", "/", "/", "--", "true"],
    };
    // Started as `launch` will start it, so the answer holds for the run.
    let (bin, mut cmd) = match r {
        Runtime::Bwrap => ("bwrap", crate::host_env::bwrap()),
        Runtime::Docker | Runtime::Podman => (r.name(), crate::host_env::engine(r.name())),
    };
    let out = cmd.args(args).stdin(Stdio::null()).kill_on_drop(true).output();
    match tokio::time::timeout(std::time::Duration::from_secs(10), out).await {
        Err(_) => Err(format!("`{bin}` did not answer within 10 s")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("`{bin}` is not installed")),
        Ok(Err(e)) => Err(format!("cannot run `{bin}`: {e}")),
        Ok(Ok(o)) if o.status.success() => Ok(()),
        Ok(Ok(o)) => Err(first_line(&o.stderr)),
    }
}

pub(crate) fn first_line(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(b);
    let line = t
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed without a message");
    line.trim().to_string()
}

/// `PID:START_TIME` of this process: what [`alive`] checks (a PID alone may be reused).
pub fn owner() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

/// Whether the run that labelled a container as `owner` is still running.
pub fn alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once(':') else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => start_time(pid).is_some_and(|s| s == start),
        Err(_) => false,
    }
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command name (field 2) may contain spaces, so count from its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// The operator's signals, as they arrive (the agent gets them; `airlock run` does not die
/// of them).
pub(crate) fn operator_signals() -> Result<mpsc::UnboundedReceiver<Signal>, LaunchError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = mpsc::unbounded_channel();
    for sig in crate::relay::FORWARDED {
        let mut stream =
            signal(SignalKind::from_raw(sig.as_raw())).map_err(|e| LaunchError::failed("cannot handle signals", e))?;
        let tx = tx.clone();
        let sig = *sig;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}
