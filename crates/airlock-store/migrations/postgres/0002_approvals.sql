-- Approvals (issue 3): held requests, votes, the cards sent for them, grants, and dashboard
-- sign-in. Rows are written by the approvals hub; decisions are applied once by
-- `UPDATE … WHERE state = 'pending'`. Same schema as migrations/sqlite/0002_approvals.sql.

CREATE TABLE approvals (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    agent      TEXT NOT NULL,
    host       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    -- JSON of the card every surface shows (rendered by the gateway; placeholders, no secrets).
    card       BYTEA NOT NULL,
    -- pending | approved | denied | expired | abandoned | withdrawn
    state      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    decided_ms BIGINT,
    -- JSON of the final status ("Approved by alice, bob", …); NULL while pending.
    status     BYTEA
);
CREATE INDEX approvals_by_state ON approvals (state, created_ms);

-- One vote per person per approval: the primary key refuses a second one.
CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    person      TEXT COLLATE "C" NOT NULL,
    approve     BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (approval_id, person)
);

-- Where each card landed, so it can be updated (also after a restart: "abandoned").
CREATE TABLE approval_messages (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    channel     TEXT COLLATE "C" NOT NULL,
    person      TEXT COLLATE "C" NOT NULL,
    message_ref TEXT NOT NULL,
    PRIMARY KEY (approval_id, channel, person)
);

-- "Approve for 15 min": scoped to agent + rule + host, time-limited, revocable.
CREATE TABLE grants (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    agent       TEXT NOT NULL,
    rule        TEXT NOT NULL,
    host        TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    approval_id TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);
CREATE INDEX grants_by_expiry ON grants (expires_ms);

-- Dashboard sign-in: argon2id PHC strings, never plaintext.
CREATE TABLE people_passwords (
    person     TEXT PRIMARY KEY NOT NULL,
    hash       TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Dashboard sessions: only the SHA-256 of the cookie value is stored.
CREATE TABLE web_sessions (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    person     TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
