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
