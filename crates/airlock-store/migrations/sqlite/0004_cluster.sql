-- Scale-out (issue 5): replicas sharing this database. Same schema as migrations/postgres/0004_cluster.sql.

-- One row per running replica, renewed while it lives. A replica whose lease has expired is
-- dead to the others: they abandon the approvals it held (never forwarded) and update their cards.
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY NOT NULL,
    started_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);

-- The replica holding the agent's connection for this approval: the only one that may forward
-- it. NULL for rows written before this migration (treated as held by no live replica).
ALTER TABLE approvals ADD COLUMN replica TEXT;

-- 1 when an approving vote also asked for a grant ("approve for 15 min").
ALTER TABLE approval_votes ADD COLUMN grant_asked INTEGER NOT NULL DEFAULT 0;

-- The polling fallback of cross-replica release reads what was decided recently.
CREATE INDEX approvals_by_decision ON approvals (decided_ms);
