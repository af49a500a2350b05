-- What the agents' stricter enforcement reports.
--
-- An instance may refuse a policy version that fails validation and keep
-- enforcing the one it had; its heartbeat says which version it refused and
-- why, and the fleet view shows it, so a publish no agent applies is seen.
-- The errors are the agent's first few, as a JSON array of "path: code".
-- All four are NULL when the latest heartbeat refused nothing.
ALTER TABLE instances ADD COLUMN refused_version INTEGER;
ALTER TABLE instances ADD COLUMN refused_source TEXT;
ALTER TABLE instances ADD COLUMN refused_errors TEXT;
ALTER TABLE instances ADD COLUMN refused_at INTEGER;

-- Two more additive counters per (service, dependency, minute): idempotency
-- keys reused with a different payload, and side effects not run twice.
ALTER TABLE telemetry_rollups ADD COLUMN idempotency_conflicts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN duplicates_prevented INTEGER NOT NULL DEFAULT 0;
