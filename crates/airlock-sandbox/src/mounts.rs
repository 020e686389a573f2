//! `--mount SRC:DST[:ro]` and the allowlist that keeps credentials, container engines and
//! airlock's own state out of the sandbox (invariants 1 and 2): `~/.ssh`, `~/.aws`,
//! `~/.config/gcloud`, `.env` files, every container engine's and runtime's sockets and state
//! (rootful and rootless), any Unix socket, the host's `/proc`, airlock's data directory and
//! config are refused, also when reached through a symlink or a parent directory.

use std::path::{Component, Path, PathBuf};

/// Sockets and state of container engines and runtimes, rootful. Whoever reaches one can
/// start a privileged container (root on the host) or read every container's files. Each is
/// refused under `/var/run` too (a symlink to `/run` on most systems, a directory on some).
pub const ENGINE_PATHS: &[&str] = &[
    "/run/docker.sock",
    "/run/docker",     // Docker's exec root, holding its containerd's socket
    "/var/lib/docker", // Docker's data root
    "/run/containerd",
    "/var/lib/containerd",
    "/run/crio", // CRI-O
    "/var/lib/crio",
    "/run/buildkit",
    "/var/lib/buildkit",
    "/run/podman",
    "/run/containers", // Podman's registry logins (`containers/0/auth.json`)
    "/var/lib/containers",
    "/run/cri-dockerd.sock",
    "/run/k3s", // k3s's containerd
    "/var/lib/rancher",
    "/var/lib/lxd", // LXD and Incus: their socket is root on the host too
    "/var/snap/lxd",
    "/var/lib/incus",
];

/// The same, rootless, under the user's runtime directory (`$XDG_RUNTIME_DIR`).
pub const ROOTLESS_RUNTIME_PATHS: &[&str] = &[
    "docker.sock",
    "docker",
    "podman",
    "containers",
    "containerd",
    "containerd-rootless",
    "buildkit",
];

/// The same, rootless, under the user's home: data roots and registry logins.
pub const ROOTLESS_HOME_PATHS: &[&str] = &[
    ".local/share/docker",
    ".local/share/containers",
    ".local/share/containerd",
    ".local/share/buildkit",
    ".config/containers",
];

/// What the operator's environment says about where their credentials and engines live.
#[derive(Debug, Clone, Default)]
pub struct Operator {
    pub home: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR` and `/run/user/UID`: rootless engines put their sockets there.
    pub runtime_dirs: Vec<PathBuf>,
    /// The Unix sockets `DOCKER_HOST` and `CONTAINER_HOST` name (`unix:///…`).
    pub engine_sockets: Vec<PathBuf>,
}

impl Operator {
    /// From this process's environment (`HOME`, `XDG_RUNTIME_DIR`, `DOCKER_HOST`,
    /// `CONTAINER_HOST`) and user id.
    pub fn from_env() -> Operator {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let mut runtime_dirs: Vec<PathBuf> = var("XDG_RUNTIME_DIR").into_iter().collect();
        runtime_dirs.push(PathBuf::from(format!(
            "/run/user/{}",
            rustix::process::getuid().as_raw()
        )));
        let engine_sockets = ["DOCKER_HOST", "CONTAINER_HOST"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .filter_map(|h| h.strip_prefix("unix://").map(PathBuf::from))
            .collect();
        Operator {
            home: var("HOME"),
            runtime_dirs,
            engine_sockets,
        }
    }
}

/// One bind mount into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Canonical host path (symlinks resolved).
    pub src: PathBuf,
    /// Absolute path inside the sandbox.
    pub dst: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("--mount {0:?}: expected SRC:DST or SRC:DST:ro")]
    Syntax(String),
    #[error("--mount {spec:?}: {src} does not exist")]
    Missing { spec: String, src: String },
    #[error("--mount {spec:?}: the destination must be an absolute path without '..'")]
    BadDestination { spec: String },
    #[error("--mount {spec:?}: refused, {why} ({path}); credentials and airlock's own state never enter the sandbox")]
    Refused {
        spec: String,
        path: String,
        why: &'static str,
    },
}

/// What must never be mounted, for one user and one airlock installation.
#[derive(Debug, Clone)]
pub struct Forbidden {
    /// (path, why), canonicalized when they exist.
    pub paths: Vec<(PathBuf, &'static str)>,
}

impl Forbidden {
    /// The defaults for `operator`, plus airlock's `data_dir` and `config` file.
    pub fn new(operator: &Operator, data_dir: &Path, config: &Path) -> Forbidden {
        const ENGINE: &str = "it is a container engine's socket or state (root on the host)";
        let mut paths: Vec<(PathBuf, &'static str)> = vec![
            (
                data_dir.to_path_buf(),
                "it is airlock's data directory (vault, CA key, tokens)",
            ),
            (config.to_path_buf(), "it is airlock's configuration"),
            (
                "/proc".into(),
                "it is the host's /proc (every process's environment, open files and root)",
            ),
        ];
        for p in ENGINE_PATHS {
            paths.push((p.into(), ENGINE));
            if let Some(rest) = p.strip_prefix("/run/") {
                paths.push((Path::new("/var/run").join(rest), ENGINE));
            }
        }
        for dir in operator.runtime_dirs.iter().filter(|d| d.is_absolute()) {
            paths.extend(ROOTLESS_RUNTIME_PATHS.iter().map(|p| (dir.join(p), ENGINE)));
        }
        for socket in operator.engine_sockets.iter().filter(|s| s.is_absolute()) {
            paths.push((socket.clone(), ENGINE));
        }
        if let Some(h) = &operator.home {
            for (rel, why) in [
                (".ssh", "it holds SSH keys"),
                (".aws", "it holds AWS credentials"),
                (".config/gcloud", "it holds Google Cloud credentials"),
                (".azure", "it holds Azure credentials"),
                (".kube", "it holds Kubernetes credentials"),
                (".docker", "it holds registry credentials"),
                (".gnupg", "it holds GPG keys"),
                (".netrc", "it holds passwords"),
            ] {
                paths.push((h.join(rel), why));
            }
            paths.extend(ROOTLESS_HOME_PATHS.iter().map(|p| (h.join(p), ENGINE)));
        }
        let paths = paths.into_iter().map(|(p, why)| (resolve(&p), why)).collect();
        Forbidden { paths }
    }

    /// Parses and checks one `--mount` value.
    pub fn check(&self, spec: &str) -> Result<Mount, MountError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (src, dst, read_only) = match parts.as_slice() {
            [s, d] => (*s, *d, false),
            [s, d, "ro"] => (*s, *d, true),
            [s, d, "rw"] => (*s, *d, false),
            _ => return Err(MountError::Syntax(spec.to_string())),
        };
        if src.is_empty() || dst.is_empty() {
            return Err(MountError::Syntax(spec.to_string()));
        }
        let dst = PathBuf::from(dst);
        if !dst.is_absolute() || dst.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(MountError::BadDestination { spec: spec.to_string() });
        }
        // Resolving symlinks first: a link named "project" pointing at ~/.ssh is still ~/.ssh.
        let src = std::fs::canonicalize(src).map_err(|_| MountError::Missing {
            spec: spec.to_string(),
            src: src.to_string(),
        })?;
        let refuse = |path: &Path, why| MountError::Refused {
            spec: spec.to_string(),
            path: path.display().to_string(),
            why,
        };
        for (bad, why) in &self.paths {
            // Mounting it, something inside it, or a directory that contains it.
            if src.starts_with(bad) || bad.starts_with(&src) {
                return Err(refuse(bad, why));
            }
        }
        if is_env_file(&src) {
            return Err(refuse(&src, "it is a .env file"));
        }
        if is_socket(&src) {
            return Err(refuse(&src, SOCKET));
        }
        if src.is_dir()
            && let Some((found, why)) = refused_inside(&src, 3)
        {
            return Err(refuse(&found, why));
        }
        Ok(Mount { src, dst, read_only })
    }
}

/// A socket is a service on the host (an engine, an SSH or GPG agent, D-Bus) reached around
/// the gateway, whatever its name or path: a hard link or a renamed engine socket is still one.
const SOCKET: &str = "it is a Unix socket (a service on the host, outside the gateway)";

/// `p` with symlinks resolved as far as it exists: `/var/run/crio` is `/run/crio` where
/// `/var/run` links to `/run`, even while `crio` does not exist.
fn resolve(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => resolve(parent).join(name),
        _ => p.to_path_buf(),
    }
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn is_env_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == ".env" || n.starts_with(".env.") || n.ends_with(".env"))
}

/// A `.env` file or a Unix socket within `depth` levels of `dir` (dependency and VCS folders
/// skipped), and why it is refused.
fn refused_inside(dir: &Path, depth: usize) -> Option<(PathBuf, &'static str)> {
    use std::os::unix::fs::FileTypeExt;
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_file() && is_env_file(&p) {
            return Some((p, "the directory holds a .env file"));
        }
        if t.is_socket() {
            return Some((
                p,
                "the directory holds a Unix socket (a service on the host, outside the gateway)",
            ));
        }
        let skip = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| matches!(n, ".git" | "node_modules" | "target" | ".venv"));
        if t.is_dir()
            && depth > 0
            && !skip
            && let Some(found) = refused_inside(&p, depth - 1)
        {
            return Some(found);
        }
    }
    None
}
