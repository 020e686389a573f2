//! Sandboxes for `airlock run` (invariants 1–3): the agent's only way out is the gateway.
//! The pure parts decide what a sandbox looks like — mounts checked against what must never
//! enter it, the agent's environment, each runtime's command line — and can be read and
//! tested without a container engine; `launch`, `container` and `bubblewrap` carry them
//! out, and `relay` is the exit that runs inside.
#![forbid(unsafe_code)]

mod bubblewrap;
pub mod container;
pub mod env;
pub mod host_env;
pub mod launch;
pub mod mounts;
pub mod relay;
pub mod runtime;

use launch::{Launch, LaunchError, Runtime};

/// Runs the agent in the sandbox `l` describes; returns its exit status.
pub async fn run(l: Launch) -> Result<i32, LaunchError> {
    match l.runtime {
        Runtime::Docker | Runtime::Podman => container::run(l.runtime.name(), &l).await,
        Runtime::Bwrap => bubblewrap::run(&l).await,
    }
}
