-- airlock store schema, version 1 (PostgreSQL).
-- Keep in step with migrations/sqlite: integers are BIGINT (i64), binary values are BYTEA (BLOB),
-- timestamps are milliseconds since the Unix epoch supplied by the caller. Text that is sorted
-- is COLLATE "C" so that PostgreSQL orders it byte by byte, as SQLite does.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);

CREATE TABLE agents (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    token_hash BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Sealed secrets: the store never sees plaintext.
CREATE TABLE secrets (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    version    BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- The audit hash chain. `seq` is the primary key, so a second record claiming an existing
-- position (a fork) is refused. `ts_ms` mirrors the timestamp inside the hashed `body`
-- (for queries); `airlock audit verify` checks that the two agree.
CREATE TABLE audit_records (
    seq       BIGINT PRIMARY KEY NOT NULL CHECK (seq > 0),
    ts_ms     BIGINT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL,
    body      BYTEA NOT NULL
);

-- Signed chain heads.
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY NOT NULL CHECK (seq > 0),
    hash       BYTEA NOT NULL,
    signature  BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    ts_ms      BIGINT NOT NULL
);

-- Append-only by construction. Someone who owns the tables can drop these triggers; the hash
-- chain and signed checkpoints are what detect that. These stop accidents and bugs.
-- (TRUNCATE skips row triggers, hence the statement-level ones.)
CREATE FUNCTION airlock_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', replace(TG_TABLE_NAME, '_', ' ');
END
$$;
CREATE TRIGGER audit_records_no_change BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION airlock_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION airlock_append_only();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION airlock_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION airlock_append_only();
