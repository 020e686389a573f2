-- Defer mode (a rule's on_hold = "defer"; see src/deferred_ops.rs): the approvals a gateway
-- answered with 428 instead of holding the agent's connection. Once its approval is approved,
-- the agent's identical request (same agent, same digest) passes once: passed_ms is set by one
-- atomic UPDATE, so only one request on any replica sharing the store is let through.
CREATE TABLE deferred (
    approval_id TEXT PRIMARY KEY NOT NULL,
    agent       TEXT NOT NULL,
    digest      TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    passed_ms   BIGINT
);
CREATE INDEX deferred_by_request ON deferred (agent, digest, created_ms);
