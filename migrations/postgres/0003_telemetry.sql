-- Telemetry from agents: a receipt per accepted batch, which makes a resend
-- count once, and one-minute rollups per (service, dependency), kept for
-- BALLAST_ROLLUP_RETENTION_DAYS. The rollups hold the fixed latency histogram
-- (b00..b15, one column per bucket of LATENCY_BUCKETS_MS) so that percentiles
-- can be computed from stored data, and every column adds up across batches.

CREATE TABLE telemetry_receipts (
    service_id  BIGINT NOT NULL REFERENCES services (id),
    instance_id TEXT    NOT NULL,
    sequence    BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (service_id, instance_id, sequence)
);
-- Receipts are pruned by age.
CREATE INDEX telemetry_receipts_received_idx ON telemetry_receipts (received_at);

CREATE TABLE telemetry_rollups (
    service_id  BIGINT NOT NULL REFERENCES services (id),
    dependency  TEXT    NOT NULL,
    minute_ms   BIGINT NOT NULL,
    calls                  BIGINT NOT NULL DEFAULT 0,
    successes              BIGINT NOT NULL DEFAULT 0,
    failures               BIGINT NOT NULL DEFAULT 0,
    timeouts               BIGINT NOT NULL DEFAULT 0,
    retries                BIGINT NOT NULL DEFAULT 0,
    retry_budget_exhausted BIGINT NOT NULL DEFAULT 0,
    breaker_rejections     BIGINT NOT NULL DEFAULT 0,
    bulkhead_rejections    BIGINT NOT NULL DEFAULT 0,
    rate_limited           BIGINT NOT NULL DEFAULT 0,
    shed                   BIGINT NOT NULL DEFAULT 0,
    fallbacks              BIGINT NOT NULL DEFAULT 0,
    degraded               BIGINT NOT NULL DEFAULT 0,
    repairs                BIGINT NOT NULL DEFAULT 0,
    tokens                 BIGINT NOT NULL DEFAULT 0,
    cost_usd_micros        BIGINT NOT NULL DEFAULT 0,
    latency_sum_ms         BIGINT NOT NULL DEFAULT 0,
    b00                    BIGINT NOT NULL DEFAULT 0,
    b01                    BIGINT NOT NULL DEFAULT 0,
    b02                    BIGINT NOT NULL DEFAULT 0,
    b03                    BIGINT NOT NULL DEFAULT 0,
    b04                    BIGINT NOT NULL DEFAULT 0,
    b05                    BIGINT NOT NULL DEFAULT 0,
    b06                    BIGINT NOT NULL DEFAULT 0,
    b07                    BIGINT NOT NULL DEFAULT 0,
    b08                    BIGINT NOT NULL DEFAULT 0,
    b09                    BIGINT NOT NULL DEFAULT 0,
    b10                    BIGINT NOT NULL DEFAULT 0,
    b11                    BIGINT NOT NULL DEFAULT 0,
    b12                    BIGINT NOT NULL DEFAULT 0,
    b13                    BIGINT NOT NULL DEFAULT 0,
    b14                    BIGINT NOT NULL DEFAULT 0,
    b15                    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (service_id, dependency, minute_ms)
);
-- Rollups are pruned by age.
CREATE INDEX telemetry_rollups_minute_idx ON telemetry_rollups (minute_ms);
