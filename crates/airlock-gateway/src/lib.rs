//! airlock's proxy. It gathers facts, asks the core, and carries out the answer; it
//! decides nothing itself.
#![forbid(unsafe_code)]

mod answer;
mod body;
mod conn;
pub mod credentials;
mod decide;
mod defer;
pub mod drain;
mod facts;
mod forward;
mod handle;
pub mod held_cap;
mod hold;
mod intercept;
pub mod limit;
pub mod metrics;
mod outbound;
mod proxy;
mod record;
mod response;
mod rewind;
mod session;
pub mod state;
pub mod upstream;
mod websocket;

#[cfg(test)]
mod stages_tests;

pub use conn::now_ms;
pub use drain::Drain;
pub use proxy::{serve, serve_agent_socket};
pub use record::CUT;
pub use state::{Agent, Approvals, GatewayState, Identities, Limits, Principal, token_hash};
