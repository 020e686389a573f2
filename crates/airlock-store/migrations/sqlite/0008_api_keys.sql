-- Scoped API keys for the OneCLI-compatible provisioning and approvals API (see src/apikeys_ops.rs):
-- only the SHA-256 of each key is kept (keys are 32 random bytes, so a plain hash cannot be
-- reversed by guessing), with the comma-separated scopes it was issued for.
CREATE TABLE api_keys (
    name       TEXT PRIMARY KEY NOT NULL,
    key_hash   BLOB NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
