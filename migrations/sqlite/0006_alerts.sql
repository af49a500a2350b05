-- Alert rules, the alerts they raise, silences, webhooks and the outbox of
-- notifications. An alert's transition and its notifications commit in one
-- transaction, and a transition only happens once (a conditional update),
-- so several replicas evaluating the same rules notify once.

CREATE TABLE alert_rules (
    name        TEXT    PRIMARY KEY,
    definition  TEXT    NOT NULL,
    runbook     TEXT    NOT NULL REFERENCES runbooks (slug),
    enabled     INTEGER NOT NULL,
    builtin     INTEGER NOT NULL,
    updated_by  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE alerts (
    id              TEXT    PRIMARY KEY,
    rule            TEXT    NOT NULL REFERENCES alert_rules (name) ON DELETE CASCADE,
    service_id      INTEGER NOT NULL REFERENCES services (id),
    dependency      TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    value           DOUBLE PRECISION NOT NULL,
    threshold       DOUBLE PRECISION NOT NULL,
    summary         TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    fired_at        INTEGER,
    resolved_at     INTEGER,
    acknowledged_by TEXT,
    acknowledged_at INTEGER
);
-- One live alert per rule, service and dependency, whoever evaluates.
CREATE UNIQUE INDEX alerts_live_key ON alerts (rule, service_id, dependency)
    WHERE state IN ('pending', 'firing');
CREATE INDEX alerts_state_idx ON alerts (state, started_at);

CREATE TABLE silences (
    id          TEXT    PRIMARY KEY,
    rule        TEXT,
    service     TEXT,
    environment TEXT,
    reason      TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    ended_by    TEXT
);
CREATE INDEX silences_ends_idx ON silences (ends_at);

CREATE TABLE webhooks (
    id                   TEXT    PRIMARY KEY,
    name                 TEXT    NOT NULL,
    url                  TEXT    NOT NULL,
    secret               TEXT    NOT NULL,
    created_by           TEXT    NOT NULL,
    created_at           INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    open_until           INTEGER,
    deleted_at           INTEGER
);

CREATE TABLE alert_notifications (
    id              TEXT    PRIMARY KEY,
    alert_id        TEXT    NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    webhook_id      TEXT    NOT NULL REFERENCES webhooks (id),
    event           TEXT    NOT NULL CHECK (event IN ('firing', 'resolved')),
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    CONSTRAINT alert_notifications_once UNIQUE (alert_id, webhook_id, event)
);
CREATE INDEX alert_notifications_due_idx ON alert_notifications (status, next_attempt_at);

-- Who runs a singleton job (the alert evaluator) until when.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
