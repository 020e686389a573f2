//! Sandboxes for `airlock run` (invariants 1–3): the agent's only way out is the gateway.
//! This crate holds the parts that decide what a sandbox looks like — mounts checked
//! against what must never enter it, the agent's environment, and each runtime's command
//! line — so they can be read and tested without a container engine.
#![forbid(unsafe_code)]

pub mod env;
pub mod mounts;
pub mod runtime;
