-- Dead letters, the actions people take on them, and each entry's history.
-- A publish request now records the version it was computed against, so an
-- approval of a stale request is refused rather than published over a newer
-- version.

ALTER TABLE publish_requests ADD COLUMN base_version BIGINT;

CREATE TABLE dead_letters (
    id              TEXT    PRIMARY KEY,
    service_id      BIGINT NOT NULL REFERENCES services (id),
    run_id          TEXT    NOT NULL,
    task_type       TEXT    NOT NULL,
    failed_node     TEXT    NOT NULL,
    error_type      TEXT    NOT NULL,
    error_message   TEXT    NOT NULL,
    retry_count     BIGINT NOT NULL,
    last_checkpoint TEXT,
    payload_hash    TEXT    NOT NULL,
    created_at      BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN
                        ('open', 'pending', 'redriven', 'cancelled', 'completed', 'escalated')),
    resolved_at     BIGINT,
    CONSTRAINT dead_letters_run_node_key UNIQUE (service_id, run_id, failed_node)
);
CREATE INDEX dead_letters_service_idx ON dead_letters (service_id, received_at, id);
CREATE INDEX dead_letters_status_idx ON dead_letters (status, service_id, received_at);
CREATE INDEX dead_letters_resolved_idx ON dead_letters (resolved_at);

CREATE TABLE dlq_actions (
    id               TEXT    PRIMARY KEY,
    dead_letter_id   TEXT    NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    service_id       BIGINT NOT NULL REFERENCES services (id),
    kind             TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    resolution_note  TEXT,
    escalate_to      TEXT,
    requested_by     TEXT    NOT NULL,
    requested_at     BIGINT NOT NULL,
    approval_reasons TEXT    NOT NULL,
    expires_at       BIGINT NOT NULL,
    policy_version   BIGINT,
    entry_revision   BIGINT NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                         ('requested', 'approved', 'rejected', 'expired', 'withdrawn', 'refused',
                          'dispatched', 'succeeded', 'failed', 'uncertain')),
    decided_by       TEXT,
    decided_at       BIGINT,
    decision_reason  TEXT,
    dispatched_to    TEXT,
    dispatched_at    BIGINT,
    ack_deadline     BIGINT,
    finished_at      BIGINT,
    detail           TEXT
);
-- One live action per dead letter: two people cannot redrive the same work.
CREATE UNIQUE INDEX dlq_actions_live_key ON dlq_actions (dead_letter_id)
    WHERE status IN ('requested', 'approved', 'dispatched');
CREATE INDEX dlq_actions_status_idx ON dlq_actions (status, service_id, decided_at);
CREATE INDEX dlq_actions_entry_idx ON dlq_actions (dead_letter_id, requested_at);

CREATE TABLE dlq_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dead_letter_id TEXT    NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    action_id      TEXT,
    at             BIGINT NOT NULL,
    actor          TEXT    NOT NULL,
    event          TEXT    NOT NULL,
    detail         TEXT    NOT NULL
);
CREATE INDEX dlq_events_entry_idx ON dlq_events (dead_letter_id, id);
