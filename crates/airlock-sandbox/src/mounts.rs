//! `--mount SRC:DST[:ro]` and the allowlist that keeps credentials and airlock's own state
//! out of the sandbox (invariants 1 and 2): `~/.ssh`, `~/.aws`, `~/.config/gcloud`, `.env`
//! files, the engine socket, airlock's data directory and config are refused, also when
//! reached through a symlink or a parent directory.

use std::path::{Component, Path, PathBuf};

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
    /// The defaults for `home`, plus airlock's `data_dir` and `config` file.
    pub fn new(home: Option<&Path>, data_dir: &Path, config: &Path) -> Forbidden {
        let mut paths: Vec<(PathBuf, &'static str)> = vec![
            (
                data_dir.to_path_buf(),
                "it is airlock's data directory (vault, CA key, tokens)",
            ),
            (config.to_path_buf(), "it is airlock's configuration"),
            ("/var/run/docker.sock".into(), "it is the container engine's socket"),
            ("/run/docker.sock".into(), "it is the container engine's socket"),
            ("/run/podman".into(), "it is the container engine's socket"),
        ];
        if let Some(h) = home {
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
        }
        let paths = paths
            .into_iter()
            .map(|(p, why)| (std::fs::canonicalize(&p).unwrap_or(p), why))
            .collect();
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
        if src.is_dir()
            && let Some(found) = env_file_inside(&src, 3)
        {
            return Err(refuse(&found, "the directory holds a .env file"));
        }
        Ok(Mount { src, dst, read_only })
    }
}

fn is_env_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == ".env" || n.starts_with(".env.") || n.ends_with(".env"))
}

/// A `.env` file within `depth` levels of `dir` (dependency and VCS folders skipped).
fn env_file_inside(dir: &Path, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for e in entries.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_file() && is_env_file(&p) {
            return Some(p);
        }
        let skip = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| matches!(n, ".git" | "node_modules" | "target" | ".venv"));
        if t.is_dir()
            && depth > 0
            && !skip
            && let Some(f) = env_file_inside(&p, depth - 1)
        {
            return Some(f);
        }
    }
    None
}
