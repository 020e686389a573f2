//! The environment of every process `airlock run` starts: never the operator's whole
//! environment, which holds their tokens and may hold `AIRLOCK_MASTER_KEY`. bubblewrap gets
//! none at all — it becomes the sandbox's PID 1, and `/proc/1/environ` shows the environment
//! it was started with to everything inside, whatever `--clearenv` does for its children.
//! The engine's CLI gets only what it needs to find and reach its engine (Podman copies the
//! proxy variables of its own environment into containers, so those are not among them).

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use tokio::process::Command;

/// Variables an engine's CLI needs: `PATH` (Podman finds conmon, its OCI runtime and network
/// helpers there; Docker its credential helpers), `HOME` and the XDG directories (the CLI's
/// configuration and contexts, rootless Podman's storage and runtime directory), `TMPDIR`
/// (image builds), the session bus (rootless Podman's systemd cgroups), the SSH agent (an
/// `ssh://` engine host).
pub const ENGINE_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "SSH_AUTH_SOCK",
    "STORAGE_DRIVER",
    "STORAGE_OPTS",
];

/// Prefixes of the engines' own settings: `DOCKER_HOST`, `DOCKER_CONTEXT`, `DOCKER_CONFIG`,
/// `CONTAINER_HOST`, `CONTAINERS_CONF`, `BUILDAH_ISOLATION`, …
pub const ENGINE_PREFIXES: &[&str] = &["DOCKER_", "CONTAINER_", "CONTAINERS_", "BUILDAH_", "PODMAN_"];

/// What an engine's CLI keeps of `vars` (the operator's environment).
pub fn engine_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(k, _)| {
            k.to_str()
                .is_some_and(|k| ENGINE_VARS.contains(&k) || ENGINE_PREFIXES.iter().any(|p| k.starts_with(p)))
        })
        .collect()
}

/// The engine's CLI (`docker`, `podman`), with [`engine_env`] only.
pub(crate) fn engine(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear().envs(engine_env(std::env::vars_os()));
    c
}

/// A host tool (`ldd`, `objcopy`) run while building the relay's image: `PATH` only.
pub(crate) fn tool(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        c.env("PATH", path);
    }
    c
}

/// bubblewrap, found on the operator's `PATH`, with an empty environment: what it passes on
/// inside is set with `--setenv` only.
pub(crate) fn bwrap() -> Command {
    let program = find_in_path(OsStr::new("bwrap"), std::env::var_os("PATH").as_deref())
        .unwrap_or_else(|| PathBuf::from("bwrap"));
    let mut c = Command::new(program);
    c.env_clear();
    c
}

/// The first executable `name` in `path` (resolved here: a child without `PATH` would look
/// only in `/bin:/usr/bin`).
pub fn find_in_path(name: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}
