-- Telemetry from agents: a receipt per accepted batch, which makes a resend
-- count once, and one-minute rollups per (service, dependency), kept for
-- BALLAST_ROLLUP_RETENTION_DAYS. The rollups hold the fixed latency histogram
-- (b00..b15, one column per bucket of LATENCY_BUCKETS_MS) so that percentiles
-- can be computed from stored data, and every column adds up across batches.

CREATE TABLE telemetry_receipts (
    service_id  INTEGER NOT NULL REFERENCES services (id),
    instance_id TEXT    NOT NULL,
    sequence    INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (service_id, instance_id, sequence)
);
-- Receipts are pruned by age.
CREATE INDEX telemetry_receipts_received_idx ON telemetry_receipts (received_at);

CREATE TABLE telemetry_rollups (
    service_id  INTEGER NOT NULL REFERENCES services (id),
    dependency  TEXT    NOT NULL,
    minute_ms   INTEGER NOT NULL,
    calls                  INTEGER NOT NULL DEFAULT 0,
    successes              INTEGER NOT NULL DEFAULT 0,
    failures               INTEGER NOT NULL DEFAULT 0,
    timeouts               INTEGER NOT NULL DEFAULT 0,
    retries                INTEGER NOT NULL DEFAULT 0,
    retry_budget_exhausted INTEGER NOT NULL DEFAULT 0,
    breaker_rejections     INTEGER NOT NULL DEFAULT 0,
    bulkhead_rejections    INTEGER NOT NULL DEFAULT 0,
    rate_limited           INTEGER NOT NULL DEFAULT 0,
    shed                   INTEGER NOT NULL DEFAULT 0,
    fallbacks              INTEGER NOT NULL DEFAULT 0,
    degraded               INTEGER NOT NULL DEFAULT 0,
    repairs                INTEGER NOT NULL DEFAULT 0,
    tokens                 INTEGER NOT NULL DEFAULT 0,
    cost_usd_micros        INTEGER NOT NULL DEFAULT 0,
    latency_sum_ms         INTEGER NOT NULL DEFAULT 0,
    b00                    INTEGER NOT NULL DEFAULT 0,
    b01                    INTEGER NOT NULL DEFAULT 0,
    b02                    INTEGER NOT NULL DEFAULT 0,
    b03                    INTEGER NOT NULL DEFAULT 0,
    b04                    INTEGER NOT NULL DEFAULT 0,
    b05                    INTEGER NOT NULL DEFAULT 0,
    b06                    INTEGER NOT NULL DEFAULT 0,
    b07                    INTEGER NOT NULL DEFAULT 0,
    b08                    INTEGER NOT NULL DEFAULT 0,
    b09                    INTEGER NOT NULL DEFAULT 0,
    b10                    INTEGER NOT NULL DEFAULT 0,
    b11                    INTEGER NOT NULL DEFAULT 0,
    b12                    INTEGER NOT NULL DEFAULT 0,
    b13                    INTEGER NOT NULL DEFAULT 0,
    b14                    INTEGER NOT NULL DEFAULT 0,
    b15                    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (service_id, dependency, minute_ms)
);
-- Rollups are pruned by age.
CREATE INDEX telemetry_rollups_minute_idx ON telemetry_rollups (minute_ms);
