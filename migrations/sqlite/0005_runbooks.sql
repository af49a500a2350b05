-- Runbooks, versioned: every write adds a version and none is ever changed,
-- so a checklist started on version 3 keeps its steps when version 4 lands.
CREATE TABLE runbooks (
    slug           TEXT    PRIMARY KEY,
    latest_version INTEGER NOT NULL,
    title          TEXT    NOT NULL,
    links          TEXT    NOT NULL,
    step_count     INTEGER NOT NULL,
    updated_by     TEXT    NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE runbook_versions (
    slug       TEXT    NOT NULL REFERENCES runbooks (slug),
    version    INTEGER NOT NULL,
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    links      TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    author     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (slug, version)
);

-- A runbook worked through during an incident. Its steps are copied from
-- the version it was started on.
CREATE TABLE checklists (
    id              TEXT    PRIMARY KEY,
    slug            TEXT    NOT NULL REFERENCES runbooks (slug),
    runbook_version INTEGER NOT NULL,
    title           TEXT    NOT NULL,
    incident_ref    TEXT,
    steps           TEXT    NOT NULL,
    started_by      TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    closed_by       TEXT,
    closed_at       INTEGER
);
CREATE INDEX checklists_started_idx ON checklists (started_at);

-- Every tick and untick, append-only: who did which step, and when.
CREATE TABLE checklist_events (
    checklist_id TEXT    NOT NULL REFERENCES checklists (id),
    seq          INTEGER NOT NULL,
    step         INTEGER NOT NULL,
    done         INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    note         TEXT    NOT NULL,
    PRIMARY KEY (checklist_id, seq)
);
