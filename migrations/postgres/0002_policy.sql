-- Services, policy drafts, immutable versions, rollouts, publish approvals
-- and the fleet of agent instances.

CREATE TABLE services (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT services_name_env_key UNIQUE (name, environment)
);

-- One working draft per service; publishing copies it into a version.
CREATE TABLE policy_drafts (
    service_id BIGINT PRIMARY KEY REFERENCES services (id),
    document   TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Published versions never change: the triggers below refuse it.
CREATE TABLE policy_versions (
    service_id BIGINT NOT NULL REFERENCES services (id),
    version    BIGINT NOT NULL,
    document   TEXT    NOT NULL,
    etag       TEXT    NOT NULL,
    risk_tier  TEXT    NOT NULL,
    author     TEXT    NOT NULL,
    approver   TEXT,
    message    TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (service_id, version)
);
CREATE FUNCTION policy_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy versions are immutable';
END;
$$;
CREATE TRIGGER policy_versions_immutable BEFORE UPDATE OR DELETE ON policy_versions
FOR EACH ROW EXECUTE FUNCTION policy_versions_immutable();

-- What each service's instances should run: the active version, and an
-- optional canary version for a percentage of instances.
CREATE TABLE rollouts (
    service_id     BIGINT PRIMARY KEY REFERENCES services (id),
    active_version BIGINT,
    canary_version BIGINT,
    canary_percent BIGINT CHECK (canary_percent BETWEEN 1 AND 99),
    updated_at     BIGINT NOT NULL
);

-- A publish that needs a second person waits here.
CREATE TABLE publish_requests (
    id             TEXT    PRIMARY KEY,
    service_id     BIGINT NOT NULL REFERENCES services (id),
    document       TEXT    NOT NULL,
    message        TEXT    NOT NULL,
    canary_percent BIGINT,
    reasons        TEXT    NOT NULL,
    author         TEXT    NOT NULL,
    created_at     BIGINT NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by     TEXT,
    decided_at     BIGINT,
    version        BIGINT
);
CREATE INDEX publish_requests_status_idx ON publish_requests (status, created_at);

CREATE TABLE instances (
    service_id     BIGINT NOT NULL REFERENCES services (id),
    instance_id    TEXT    NOT NULL,
    agent_version  TEXT    NOT NULL,
    policy_version BIGINT,
    policy_source  TEXT    NOT NULL,
    started_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    PRIMARY KEY (service_id, instance_id)
);
