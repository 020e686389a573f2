-- airlock store schema, version 1 (SQLite).
-- Keep in step with migrations/postgres: integers are i64, binary values are BLOBs (bytea),
-- timestamps are milliseconds since the Unix epoch supplied by the caller.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

CREATE TABLE agents (
    name       TEXT PRIMARY KEY NOT NULL,
    token_hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);

-- Sealed secrets: the store never sees plaintext.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    version    INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- The audit hash chain. `seq` is the primary key, so a second record claiming an existing
-- position (a fork) is refused. `ts_ms` mirrors the timestamp inside the hashed `body`
-- (for queries); `airlock audit verify` checks that the two agree.
CREATE TABLE audit_records (
    seq       INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
    ts_ms     INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL,
    body      BLOB NOT NULL
);

-- Signed chain heads.
CREATE TABLE audit_checkpoints (
    seq        INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
    hash       BLOB NOT NULL,
    signature  BLOB NOT NULL,
    public_key BLOB NOT NULL,
    ts_ms      INTEGER NOT NULL
);

-- Append-only by construction. Someone with write access to the file can drop these triggers;
-- the hash chain and signed checkpoints are what detect that. These stop accidents and bugs.
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
