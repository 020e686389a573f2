//! Docker and Podman, through their CLI (the same surface for both, and the CLI already
//! does what an interactive agent needs: TTY, raw mode, resize, signal proxying).
//!
//! Two containers per run: the relay, with no network at all and the gateway's socket
//! mounted, and the agent, which joins the relay's network namespace — loopback only, the
//! relay listening on it. (A `--internal` network was measured to still reach the host's
//! own addresses through the bridge, so it is not used: see docs/sandbox.md.)

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rustix::process::{Pid, Signal, kill_process};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::host_env;
use crate::launch::{Launch, LaunchError, alive, first_line, operator_signals};
use crate::relay::{READY, exit_code};
use crate::runtime::{LABEL, OWNER_LABEL, Rlimits, container_run, relay_container};

pub(crate) async fn run(engine: &'static str, l: &Launch) -> Result<i32, LaunchError> {
    sweep(engine).await;
    if !image_exists(engine, &l.spec.image).await {
        return Err(LaunchError::NoImage {
            engine,
            image: l.spec.image.clone(),
        });
    }
    let relay_image = relay_image(engine, &l.exe).await?;
    let relay_name = format!("airlock-relay-{}", l.spec.run_id);
    let agent_name = format!("airlock-agent-{}", l.spec.run_id);
    let mut l = l.clone();
    l.spec.limits.rlimits = Some(own_rlimits());
    let result = async {
        let _relay = start_relay(engine, &l, &relay_image).await?;
        run_agent(engine, &l, &relay_name).await
    }
    .await;
    remove(engine, &[&agent_name, &relay_name]).await;
    result
}

async fn output(engine: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    collect(host_env::engine(engine), args).await
}

async fn collect(mut cmd: Command, args: &[&str]) -> std::io::Result<std::process::Output> {
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true).output().await
}

async fn image_exists(engine: &str, image: &str) -> bool {
    output(engine, &["image", "inspect", "--format", "{{.Id}}", image])
        .await
        .is_ok_and(|o| o.status.success())
}

/// The hard limits this process runs under (see [`Rlimits`]).
fn own_rlimits() -> Rlimits {
    use rustix::process::{Resource, getrlimit};
    Rlimits {
        nofile: getrlimit(Resource::Nofile).maximum,
        nproc: getrlimit(Resource::Nproc).maximum,
    }
}

async fn remove(engine: &str, names: &[&str]) {
    // As `docker rm -f` does: killed at once (Podman would first wait 10 s for SIGTERM), the
    // others removed when one is already gone, and a relay together with the agent in its
    // namespace. Podman 4.3 without `--ignore` and `--depend` removed none of the names given
    // if one was missing or was a relay whose agent was not yet removed (measured).
    let mut args = if engine == "podman" {
        vec!["rm", "-f", "--ignore", "--depend", "--time=0"]
    } else {
        vec!["rm", "-f"]
    };
    args.extend_from_slice(names);
    let _ = output(engine, &args).await;
}

/// Removes containers whose `airlock run` is gone (crashed, killed), found by label.
pub async fn sweep(engine: &str) {
    let template = if engine == "podman" {
        format!("{{{{.Names}}}}\t{{{{index .Labels \"{OWNER_LABEL}\"}}}}")
    } else {
        format!("{{{{.Names}}}}\t{{{{.Label \"{OWNER_LABEL}\"}}}}")
    };
    let filter = format!("label={LABEL}");
    let Ok(o) = output(engine, &["ps", "-a", "--filter", &filter, "--format", &template]).await else {
        return;
    };
    let stale: Vec<&str> = std::str::from_utf8(&o.stdout)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, owner)| !alive(owner))
        .map(|(name, _)| name)
        .collect();
    if !stale.is_empty() {
        remove(engine, &stale).await;
    }
}

/// The relay's image: the running airlock binary and the shared libraries it needs on an
/// empty base, built locally (no registry) and tagged by the binary's identity — its file's
/// device, inode, size and modification time. Hashing its contents instead cost ~0.5 s per
/// run for a release binary with symbols; any rebuild or replacement changes the identity.
async fn relay_image(engine: &str, exe: &Path) -> Result<String, LaunchError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(exe).map_err(|e| LaunchError::failed(format!("cannot read {}", exe.display()), e))?;
    let identity = format!("{}:{}:{}:{}.{}", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec());
    let tag = format!("airlock-relay:{}", &hex::encode(Sha256::digest(identity))[..16]);
    if image_exists(engine, &tag).await {
        return Ok(tag);
    }
    let ctx = tempfile::tempdir().map_err(|e| LaunchError::failed("cannot create a build directory", e))?;
    let root = ctx.path().join("rootfs");
    let copy = |from: &Path, to: PathBuf| -> Result<(), LaunchError> {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LaunchError::failed("relay image", e))?;
        }
        std::fs::copy(from, &to).map_err(|e| LaunchError::failed(format!("relay image: {}", from.display()), e))?;
        Ok(())
    };
    copy(exe, root.join("airlock"))?;
    // Debug info is most of a release binary with symbols; the relay needs none of it. Where
    // binutils is missing the image is just larger.
    let _ = collect(
        host_env::tool("objcopy"),
        &["--strip-debug", &root.join("airlock").display().to_string()],
    )
    .await;
    let ldd = collect(host_env::tool("ldd"), &[&exe.display().to_string()])
        .await
        .map_err(|e| LaunchError::failed("relay image: cannot run ldd", e))?;
    for lib in ldd_paths(&String::from_utf8_lossy(&ldd.stdout)) {
        copy(&lib, root.join(lib.strip_prefix("/").unwrap_or(&lib)))?;
    }
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\nUSER 65534:65534\nENTRYPOINT [\"/airlock\"]\n";
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).map_err(|e| LaunchError::failed("relay image", e))?;
    let label = format!("{LABEL}.relay=1");
    let o = output(
        engine,
        &[
            "build",
            "-q",
            "--label",
            &label,
            "-t",
            &tag,
            &ctx.path().display().to_string(),
        ],
    )
    .await
    .map_err(|e| LaunchError::failed("relay image: cannot run the build", e))?;
    if !o.status.success() {
        return Err(LaunchError::failed(
            format!("building the relay image {tag}"),
            first_line(&o.stderr),
        ));
    }
    // Relay images of earlier airlock builds are of no further use (one in use stays).
    let filter = format!("label={label}");
    if let Ok(o) = output(
        engine,
        &["images", "--filter", &filter, "--format", "{{.Repository}}:{{.Tag}}"],
    )
    .await
    {
        let text = String::from_utf8_lossy(&o.stdout);
        // Podman names local images `localhost/NAME`.
        let old: Vec<&str> = text
            .lines()
            .filter(|t| {
                let t = t.strip_prefix("localhost/").unwrap_or(t);
                t != tag && t.starts_with("airlock-relay:")
            })
            .collect();
        if !old.is_empty() {
            let mut args = vec!["rmi"];
            args.extend(old);
            let _ = output(engine, &args).await;
        }
    }
    Ok(tag)
}

/// The files `ldd` lists: `name => /path (addr)` and the loader's `/path (addr)`.
pub fn ldd_paths(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let p = l.split_once("=>").map_or(l, |(_, p)| p.trim());
            let p = p.split(" (").next()?.trim();
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect()
}

/// Starts the relay container and waits until it listens. The returned CLI process is
/// killed when dropped; the container itself is removed by name afterwards.
async fn start_relay(engine: &str, l: &Launch, image: &str) -> Result<tokio::process::Child, LaunchError> {
    let database = l.database_socket.as_ref().map(|p| p.display().to_string());
    let argv = relay_container(
        engine,
        &l.spec,
        image,
        &l.gateway_socket.display().to_string(),
        database.as_deref(),
    );
    let mut child = host_env::engine(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LaunchError::failed(format!("cannot run {engine}"), e))?;
    let mut stdout = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| LaunchError::failed("relay", "no stdout"))?,
    );
    let mut line = String::new();
    // The relay prints its ready line once it listens; nothing else comes first.
    let ready = tokio::time::timeout(std::time::Duration::from_secs(60), stdout.read_line(&mut line)).await;
    if matches!(ready, Ok(Ok(n)) if n > 0) && line.starts_with(READY) {
        return Ok(child);
    }
    let _ = child.start_kill();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), e.read_to_string(&mut err)).await;
    }
    Err(LaunchError::failed(
        "the relay container did not start",
        first_line(err.as_bytes()),
    ))
}

async fn run_agent(engine: &str, l: &Launch, relay: &str) -> Result<i32, LaunchError> {
    let argv = container_run(engine, &l.spec, relay, &l.ca_bundle.display().to_string());
    // With a terminal, the CLI stays in the terminal's foreground group (it reads it and
    // sets raw mode) and gets Ctrl-C from the terminal itself; without one, it gets its own
    // group and `airlock run` passes signals on, so none arrives twice.
    let terminal = std::io::stdin().is_terminal();
    let mut signals = operator_signals()?;
    let mut cmd = host_env::engine(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if !terminal {
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| LaunchError::failed(format!("cannot run {engine}"), e))?;
    let pid = child.id().and_then(|p| Pid::from_raw(p as i32));
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| LaunchError::failed(format!("waiting for {engine}"), e))?;
                return Ok(exit_code(status));
            }
            Some(sig) = signals.recv() => {
                let from_terminal = [Signal::INT, Signal::QUIT, Signal::WINCH].contains(&sig);
                if let Some(pid) = pid && !(terminal && from_terminal) {
                    let _ = kill_process(pid, sig);
                }
            }
        }
    }
}
