-- Service level objectives.
--
-- Each final status a request can end in gets its own additive counter, so
-- that an availability objective can count "normal or one of the allowed
-- degraded statuses" exactly. The existing `degraded` column stays the sum
-- of all five.
ALTER TABLE telemetry_rollups ADD COLUMN status_degraded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_partial BIGINT NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_queued BIGINT NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_paused BIGINT NOT NULL DEFAULT 0;
ALTER TABLE telemetry_rollups ADD COLUMN status_refused BIGINT NOT NULL DEFAULT 0;

-- What the canary analysis decided, so the overview can say why a canary
-- went away and the reliability report can list the history.
CREATE TABLE canary_verdicts (
    service_id      BIGINT NOT NULL REFERENCES services (id),
    canary_version  BIGINT NOT NULL,
    stable_version  BIGINT NOT NULL,
    decision        TEXT    NOT NULL CHECK (decision IN ('aborted', 'promoted')),
    reason          TEXT    NOT NULL,
    decided_at      BIGINT NOT NULL,
    PRIMARY KEY (service_id, canary_version)
);
