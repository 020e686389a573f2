-- Dynamic credentials (OAuth2 connections, GitHub App installation tokens; see src/creds_ops.rs).
-- credential_state: per connection, whether it needs the operator's re-consent, and the lease the
-- one replica refreshing its token holds (holder, until), so replicas sharing the store agree on
-- one refresh. The tokens themselves are sealed rows of the secrets table.
-- oauth_pending: authorization-code flows `airlock connect` started; the control plane's
-- /oauth/callback fills in the code for a known, unexpired state. (The code is useless without the
-- PKCE verifier, which never leaves the `airlock connect` process.)
CREATE TABLE credential_state (
    name           TEXT PRIMARY KEY NOT NULL,
    status         TEXT NOT NULL,
    lease_holder   TEXT NOT NULL,
    lease_until_ms INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
);
CREATE TABLE oauth_pending (
    state      TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    code       TEXT,
    error      TEXT,
    expires_ms INTEGER NOT NULL
);
