-- Rate limits shared by gateway replicas (GCRA, see src/rate_ops.rs): one theoretical arrival
-- time per key, in ms since the epoch by the gateways' clocks. The key names the agent, the rate
-- and the rule. A row whose tat_ms is past counts as no row, and is pruned now and then.
-- Same schema as migrations/postgres/0005_rate_limits.sql. (A SQLite store has one gateway,
-- which counts in memory; the table keeps both schemas, and the store's tests, the same.)
CREATE TABLE rate_limits (
    key    TEXT PRIMARY KEY NOT NULL,
    tat_ms INTEGER NOT NULL
);
