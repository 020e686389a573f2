//! airlock's decision core. Pure: no IO, no clock, no randomness — time and identities
//! are arguments, so every decision is a function of its inputs and can be replayed.
#![forbid(unsafe_code)]

pub mod approval;
pub mod audit;
pub mod facts;
pub mod glob;
pub mod host;
pub mod inject;
pub mod policy;
