-- Services, policy drafts, immutable versions, rollouts, publish approvals
-- and the fleet of agent instances.

CREATE TABLE services (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT services_name_env_key UNIQUE (name, environment)
);

-- One working draft per service; publishing copies it into a version.
CREATE TABLE policy_drafts (
    service_id INTEGER PRIMARY KEY REFERENCES services (id),
    document   TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Published versions never change: the triggers below refuse it.
CREATE TABLE policy_versions (
    service_id INTEGER NOT NULL REFERENCES services (id),
    version    INTEGER NOT NULL,
    document   TEXT    NOT NULL,
    etag       TEXT    NOT NULL,
    risk_tier  TEXT    NOT NULL,
    author     TEXT    NOT NULL,
    approver   TEXT,
    message    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (service_id, version)
);
CREATE TRIGGER policy_versions_immutable_update BEFORE UPDATE ON policy_versions
BEGIN
    SELECT RAISE(ABORT, 'policy versions are immutable');
END;
CREATE TRIGGER policy_versions_immutable_delete BEFORE DELETE ON policy_versions
BEGIN
    SELECT RAISE(ABORT, 'policy versions are immutable');
END;

-- What each service's instances should run: the active version, and an
-- optional canary version for a percentage of instances.
CREATE TABLE rollouts (
    service_id     INTEGER PRIMARY KEY REFERENCES services (id),
    active_version INTEGER,
    canary_version INTEGER,
    canary_percent INTEGER CHECK (canary_percent BETWEEN 1 AND 99),
    updated_at     INTEGER NOT NULL
);

-- A publish that needs a second person waits here.
CREATE TABLE publish_requests (
    id             TEXT    PRIMARY KEY,
    service_id     INTEGER NOT NULL REFERENCES services (id),
    document       TEXT    NOT NULL,
    message        TEXT    NOT NULL,
    canary_percent INTEGER,
    reasons        TEXT    NOT NULL,
    author         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by     TEXT,
    decided_at     INTEGER,
    version        INTEGER
);
CREATE INDEX publish_requests_status_idx ON publish_requests (status, created_at);

CREATE TABLE instances (
    service_id     INTEGER NOT NULL REFERENCES services (id),
    instance_id    TEXT    NOT NULL,
    agent_version  TEXT    NOT NULL,
    policy_version INTEGER,
    policy_source  TEXT    NOT NULL,
    started_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    PRIMARY KEY (service_id, instance_id)
);
