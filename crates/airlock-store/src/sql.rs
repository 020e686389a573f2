//! SQL shared by every backend. Written to run unchanged on SQLite and PostgreSQL:
//! `$n` placeholders, `ON CONFLICT … DO UPDATE`, integers as i64, bytes as BLOB/bytea.

pub(crate) const GET_META: &str = "SELECT key, value FROM meta WHERE key = $1";
pub(crate) const SET_META: &str =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
pub(crate) const DELETE_META: &str = "DELETE FROM meta WHERE key = $1";
pub(crate) const INSERT_META_IF_ABSENT: &str =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";

pub(crate) const ADD_AGENT: &str = "INSERT INTO agents (name, token_hash, created_ms) VALUES ($1, $2, $3)";
pub(crate) const LIST_AGENTS: &str = "SELECT name, token_hash, created_ms FROM agents ORDER BY name";
pub(crate) const REMOVE_AGENT: &str = "DELETE FROM agents WHERE name = $1";

pub(crate) const PUT_SECRET: &str = "INSERT INTO secrets (name, version, key_id, nonce, ciphertext, updated_ms) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (name) DO UPDATE SET version = excluded.version, key_id = excluded.key_id, \
     nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_ms = excluded.updated_ms";
pub(crate) const UPDATE_SECRET: &str = "UPDATE secrets SET version = $2, key_id = $3, nonce = $4, ciphertext = $5, \
     updated_ms = $6 WHERE name = $1";
pub(crate) const GET_SECRET: &str =
    "SELECT name, version, key_id, nonce, ciphertext, updated_ms FROM secrets WHERE name = $1";
pub(crate) const LIST_SECRETS: &str =
    "SELECT name, version, key_id, nonce, ciphertext, updated_ms FROM secrets ORDER BY name";
pub(crate) const REMOVE_SECRET: &str = "DELETE FROM secrets WHERE name = $1";

/// Prefix of a multi-row insert; the `VALUES (…), (…)` list is appended per batch.
pub(crate) const APPEND_AUDIT_MANY: &str = "INSERT INTO audit_records (seq, ts_ms, prev_hash, hash, body) ";
/// Rows per INSERT statement: 5 binds each stays far below SQLite's and PostgreSQL's bind limits.
pub(crate) const APPEND_AUDIT_CHUNK: usize = 200;
pub(crate) const WRITER_BATCH: &str = "SELECT batch, first_seq FROM audit_writers WHERE id = $1";
pub(crate) const RECORD_WRITER_BATCH: &str = "INSERT INTO audit_writers (id, batch, first_seq) VALUES ($1, $2, $3) \
     ON CONFLICT (id) DO UPDATE SET batch = excluded.batch, first_seq = excluded.first_seq";
pub(crate) const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1";
/// `after < seq <= upto`, ascending.
pub(crate) const AUDIT_PAGE: &str = "SELECT seq, ts_ms, prev_hash, hash, body FROM audit_records \
     WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";
pub(crate) const AUDIT_TAIL: &str = "SELECT seq, ts_ms, prev_hash, hash, body FROM \
     (SELECT seq, ts_ms, prev_hash, hash, body FROM audit_records ORDER BY seq DESC LIMIT $1) AS tail \
     ORDER BY seq";

pub(crate) const PUT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints (seq, hash, signature, public_key, ts_ms) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING";
pub(crate) const CHECKPOINT_AT: &str =
    "SELECT seq, hash, signature, public_key, ts_ms FROM audit_checkpoints WHERE seq = $1";
pub(crate) const CHECKPOINTS: &str =
    "SELECT seq, hash, signature, public_key, ts_ms FROM audit_checkpoints ORDER BY seq";
pub(crate) const LAST_CHECKPOINT: &str =
    "SELECT seq, hash, signature, public_key, ts_ms FROM audit_checkpoints ORDER BY seq DESC LIMIT 1";
