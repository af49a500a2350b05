-- Service level objectives.
--
-- Each final status a request can end in gets its own additive counter, so
-- that an availability objective can count "normal or one of the allowed
-- degraded statuses" exactly. The existing `degraded` column stays the sum
-- of all five.
ALTER TABLE telemetry_rollups ADD COLUMN status_degraded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_partial INTEGER NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_queued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_refused INTEGER NOT NULL DEFAULT 0;

-- What the canary analysis decided, so the overview can say why a canary
-- went away and the reliability report can list the history.
CREATE TABLE canary_verdicts (
    service_id      INTEGER NOT NULL REFERENCES services (id),
    canary_version  INTEGER NOT NULL,
    stable_version  INTEGER NOT NULL,
    decision        TEXT    NOT NULL CHECK (decision IN ('aborted', 'promoted')),
    reason          TEXT    NOT NULL,
    decided_at      INTEGER NOT NULL,
    PRIMARY KEY (service_id, canary_version)
);
