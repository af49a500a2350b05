-- Dead letters, the actions people take on them, and each entry's history.
-- A publish request now records the version it was computed against, so an
-- approval of a stale request is refused rather than published over a newer
-- version.

ALTER TABLE publish_requests ADD COLUMN base_version INTEGER;

CREATE TABLE dead_letters (
    id              TEXT    PRIMARY KEY,
    service_id      INTEGER NOT NULL REFERENCES services (id),
    run_id          TEXT    NOT NULL,
    task_type       TEXT    NOT NULL,
    failed_node     TEXT    NOT NULL,
    error_type      TEXT    NOT NULL,
    error_message   TEXT    NOT NULL,
    retry_count     INTEGER NOT NULL,
    last_checkpoint TEXT,
    payload_hash    TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    revision        INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN
                        ('open', 'pending', 'redriven', 'cancelled', 'completed', 'escalated')),
    resolved_at     INTEGER,
    CONSTRAINT dead_letters_run_node_key UNIQUE (service_id, run_id, failed_node)
);
CREATE INDEX dead_letters_service_idx ON dead_letters (service_id, received_at, id);
CREATE INDEX dead_letters_status_idx ON dead_letters (status, service_id, received_at);
CREATE INDEX dead_letters_resolved_idx ON dead_letters (resolved_at);

CREATE TABLE dlq_actions (
    id               TEXT    PRIMARY KEY,
    dead_letter_id   TEXT    NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    service_id       INTEGER NOT NULL REFERENCES services (id),
    kind             TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    resolution_note  TEXT,
    escalate_to      TEXT,
    requested_by     TEXT    NOT NULL,
    requested_at     INTEGER NOT NULL,
    approval_reasons TEXT    NOT NULL,
    expires_at       INTEGER NOT NULL,
    policy_version   INTEGER,
    entry_revision   INTEGER NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('requested', 'approved', 'rejected', 'expired', 'withdrawn', 'refused',
                          'dispatched', 'succeeded', 'failed', 'uncertain')),
    decided_by       TEXT,
    decided_at       INTEGER,
    decision_reason  TEXT,
    dispatched_to    TEXT,
    dispatched_at    INTEGER,
    ack_deadline     INTEGER,
    finished_at      INTEGER,
    detail           TEXT
);
-- One live action per dead letter: two people cannot redrive the same work.
CREATE UNIQUE INDEX dlq_actions_live_key ON dlq_actions (dead_letter_id)
    WHERE status IN ('requested', 'approved', 'dispatched');
CREATE INDEX dlq_actions_status_idx ON dlq_actions (status, service_id, decided_at);
CREATE INDEX dlq_actions_entry_idx ON dlq_actions (dead_letter_id, requested_at);

CREATE TABLE dlq_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dead_letter_id TEXT    NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    action_id      TEXT,
    at             INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    event          TEXT    NOT NULL,
    detail         TEXT    NOT NULL
);
CREATE INDEX dlq_events_entry_idx ON dlq_events (dead_letter_id, id);
