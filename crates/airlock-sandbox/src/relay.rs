//! `airlock relay`: the sandbox's only exit. It listens on the sandbox's loopback and
//! pipes every connection, byte for byte, to the gateway's Unix socket for this agent;
//! the gateway knows the agent by that socket, so nothing in the sandbox holds a token.
//! With a command (bubblewrap), it also starts the agent as its child, passes on the
//! signals `airlock run` forwards, and exits with the agent's status.
//!
//! An agent with databases gets a second port, piped the same way to the gateway's database
//! socket for it (PostgreSQL's wire protocol; the gateway knows the agent by that socket too).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UnixStream};

/// The line the relay prints once it listens (a container's readiness signal).
pub const READY: &str = "airlock relay: listening on";

/// Signals `airlock run` passes on to the agent (one byte each, the signal number).
pub const FORWARDED: &[Signal] = &[
    Signal::INT,
    Signal::TERM,
    Signal::HUP,
    Signal::QUIT,
    Signal::WINCH,
    Signal::USR1,
    Signal::USR2,
];

pub struct Relay {
    pub listen: SocketAddr,
    pub socket: PathBuf,
    /// The database port and the gateway's database socket it pipes to, for an agent with
    /// databases.
    pub database: Option<(SocketAddr, PathBuf)>,
    /// An inherited pipe carrying forwarded signals (bubblewrap).
    pub signals_fd: Option<i32>,
    /// The agent to start; empty: only relay, until terminated.
    pub command: Vec<String>,
}

/// Runs the relay; returns the exit status to use (the agent's, or 0).
pub async fn run(r: Relay) -> std::io::Result<i32> {
    let listener = TcpListener::bind(r.listen).await?;
    let socket = r.socket.clone();
    // Both bound before the ready line and before the agent starts: its first connection lands.
    let database = match &r.database {
        Some((addr, socket)) => Some((TcpListener::bind(addr).await?, socket.clone())),
        None => None,
    };
    tokio::spawn(accept(listener, socket));
    if let Some((listener, socket)) = database {
        tokio::spawn(accept(listener, socket));
    }
    if r.command.is_empty() {
        println!("{READY} {}", r.listen);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
        return Ok(0);
    }
    supervise(&r.command, r.signals_fd).await
}

async fn accept(listener: TcpListener, socket: PathBuf) {
    loop {
        let (mut agent, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("airlock relay: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = agent.set_nodelay(true);
        let socket = socket.clone();
        tokio::spawn(async move {
            match UnixStream::connect(&socket).await {
                Ok(mut gw) => {
                    let _ = tokio::io::copy_bidirectional(&mut agent, &mut gw).await;
                }
                // The agent sees its connection closed; the operator sees why.
                Err(e) => eprintln!(
                    "airlock relay: the gateway is not answering at {} ({e}); is `airlock serve` running?",
                    socket.display()
                ),
            }
        });
    }
}

/// Starts the agent in its own process group and waits for it, passing on forwarded
/// signals to the whole group (as a terminal would).
async fn supervise(command: &[String], signals_fd: Option<i32>) -> std::io::Result<i32> {
    // The agent inherits the relay's environment: bubblewrap started the relay with
    // `--clearenv` and the agent's variables only (`runtime::bwrap`), from an empty one.
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {}: {e}", command[0])))?;
    let group = child.id().and_then(|id| Pid::from_raw(id as i32));
    let mut signals = match signals_fd {
        // Opening the inherited descriptor by name keeps this crate free of unsafe code; a
        // non-blocking reader, so no thread is left blocked on it when the agent exits.
        Some(fd) => Some(tokio::net::unix::pipe::Receiver::from_file(std::fs::File::open(
            Path::new("/proc/self/fd").join(fd.to_string()),
        )?)?),
        None => None,
    };
    let mut buf = [0u8; 16];
    loop {
        tokio::select! {
            status = child.wait() => return Ok(exit_code(status?)),
            n = async { signals.as_mut()?.read(&mut buf).await.ok() }, if signals.is_some() => {
                match n {
                    Some(n) if n > 0 => {
                        for b in &buf[..n] {
                            if let (Some(pg), Some(sig)) = (group, forwarded(*b)) {
                                let _ = kill_process_group(pg, sig);
                            }
                        }
                    }
                    // `airlock run` is gone: the agent goes too.
                    _ => {
                        let _ = child.start_kill();
                        signals = None;
                    }
                }
            }
        }
    }
}

fn forwarded(b: u8) -> Option<Signal> {
    FORWARDED.iter().copied().find(|s| s.as_raw() == i32::from(b))
}

/// A shell's convention: the exit code, or 128 + the signal that ended the process.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}
