//! [`Store`]'s dynamic-credential operations (see `creds_ops.rs` for the SQL and the design).

use crate::{Backend, SecretRow, Store, StoreError, postgres, sqlite};

/// A connection's status once its refresh was refused: the operator must run `airlock connect`.
pub const NEEDS_CONSENT: &str = "needs_consent";

/// A pending `airlock connect`: the connection's name, and the code or error the callback brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthPending {
    pub name: String,
    pub code: Option<String>,
    pub error: Option<String>,
}

impl Store {
    /// Takes (or renews) the lease on refreshing `name` until `until_ms`; `false` when another
    /// holder has it.
    pub async fn credential_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, credential_lease(name, holder, now_ms, until_ms))
    }

    /// In one transaction: releases `holder`'s lease on `name`, sets its status and writes the
    /// sealed `rows` (the new access token and, when the server rotated it, the refresh token).
    /// `false` (and nothing written) when the lease is no longer `holder`'s.
    pub async fn credential_commit(
        &self,
        name: &str,
        holder: &str,
        rows: &[SecretRow],
        status: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, credential_commit(name, holder, rows, status, now_ms))
    }

    /// Sets `name`'s status (`""`: fine; [`NEEDS_CONSENT`]).
    pub async fn credential_set_status(&self, name: &str, status: &str, now_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, credential_set_status(name, status, now_ms))
    }

    /// Every connection with a recorded status, `(name, status)`.
    pub async fn credential_statuses(&self) -> Result<Vec<(String, String)>, StoreError> {
        dispatch!(self, credential_statuses())
    }

    /// Records a started authorization-code flow for connection `name`, keyed by its `state`.
    pub async fn oauth_begin(&self, state: &str, name: &str, expires_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, oauth_begin(state, name, expires_ms))
    }

    /// The provider's redirect arrived: stores its code (or error) for `state`, once, before the
    /// flow expires. `false` for an unknown, expired or already answered state.
    pub async fn oauth_callback(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, oauth_callback(state, code, error, now_ms))
    }

    /// The flow started with `state`, if it is still pending.
    pub async fn oauth_poll(&self, state: &str) -> Result<Option<OAuthPending>, StoreError> {
        let row: Option<(String, Option<String>, Option<String>)> = dispatch!(self, oauth_poll(state))?;
        Ok(row.map(|(name, code, error)| OAuthPending { name, code, error }))
    }

    /// Forgets the flow `state`, and every expired one.
    pub async fn oauth_finish(&self, state: &str, now_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, oauth_finish(state, now_ms))
    }
}
