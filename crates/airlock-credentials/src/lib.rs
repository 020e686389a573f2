//! airlock-credentials: credentials the gateway obtains at run time instead of a static value —
//! OAuth2 connections (authorization code with PKCE, then refresh) and GitHub App installation
//! tokens (an RS256 App JWT exchanged for an hour-long token) — and the cache that hands the
//! gateway the current token, refreshing it single-flight across requests and replicas — and the
//! AWS Signature V4 re-signing of requests the sandbox signed with its placeholder keys.
//!
//! Tokens live in [`airlock_vault::SecretBytes`] and sealed in the store; errors name the
//! credential, never a token (invariant 2).
#![forbid(unsafe_code)]

pub mod aws;
pub mod github;
pub mod jwt;
pub mod oauth2;
pub mod pkce;
pub mod tokens;

pub use tokens::{Current, TokenError, Tokens, access_row_name, access_value, refresh_at};
