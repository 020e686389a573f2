//! bubblewrap: no engine, just namespaces. The relay runs inside the sandbox as the
//! agent's parent; `airlock run` passes the operator's signals to it over an inherited pipe
//! (bwrap itself would die of them and take the agent down without a word).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Stdio;

use crate::host_env;
use crate::launch::{Launch, LaunchError, operator_signals};
use crate::relay::exit_code;
use crate::runtime::{BWRAP_SYSTEM_DIRS, BwrapHost, bwrap};
use rustix::io::{FdFlags, fcntl_setfd};
use rustix::pipe::{PipeFlags, pipe_with};

pub(crate) async fn run(l: &Launch) -> Result<i32, LaunchError> {
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| LaunchError::failed("cannot create a pipe", e))?;
    // Only the read end crosses into the sandbox.
    fcntl_setfd(&read, FdFlags::empty()).map_err(|e| LaunchError::failed("cannot create a pipe", e))?;
    let links = BWRAP_SYSTEM_DIRS
        .iter()
        .filter_map(|d| {
            let target = std::fs::read_link(d).ok()?;
            Some((d.to_string(), target.display().to_string()))
        })
        .collect();
    let host = BwrapHost {
        exe: l.exe.clone(),
        gateway_socket: l.gateway_socket.clone(),
        database_socket: l.database_socket.clone(),
        ca_bundle: l.ca_bundle.clone(),
        signals_fd: read.as_raw_fd(),
        links,
    };
    let argv = bwrap(&l.spec, &host);
    let mut signals = operator_signals()?;
    // argv[0] is "bwrap": found on the operator's PATH, started with an empty environment.
    let mut child = host_env::bwrap()
        .args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Out of the terminal's foreground group: Ctrl-C reaches `airlock run`, which passes
        // it on, instead of killing bwrap (and with it the agent) outright.
        .process_group(0)
        .spawn()
        .map_err(|e| LaunchError::failed("cannot start bwrap", e))?;
    drop(read);
    let mut write = std::fs::File::from(write);
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| LaunchError::failed("waiting for bwrap", e))?;
                return Ok(exit_code(status));
            }
            Some(sig) = signals.recv() => {
                // The relay may be gone already; the agent's status arrives through wait().
                let _ = write.write_all(&[sig.as_raw() as u8]);
            }
        }
    }
}
