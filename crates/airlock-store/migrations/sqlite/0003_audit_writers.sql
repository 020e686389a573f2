-- Audit writers (scale-out: several replicas append to one chain). Each writer records its last
-- batch here in the batch's own transaction, so a writer that lost a commit's acknowledgement
-- can tell whether the batch landed, and never appends it twice. `id` is random per writer
-- start: one small row per gateway start. Same schema as migrations/postgres/0003_audit_writers.sql.
CREATE TABLE audit_writers (
    id        BLOB PRIMARY KEY NOT NULL,
    batch     INTEGER NOT NULL,
    first_seq INTEGER NOT NULL
);
