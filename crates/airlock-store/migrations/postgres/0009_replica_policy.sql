-- Policy hot reload across replicas (issue 16). Same schema as migrations/sqlite/0008_replica_policy.sql.
-- The SHA-256 of the config file each replica runs, so `airlock status` shows every replica's
-- policy (NULL until the replica records it).
ALTER TABLE replicas ADD COLUMN policy_sha256 TEXT;
