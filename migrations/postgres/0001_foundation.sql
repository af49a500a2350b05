-- Ballast foundation schema (PostgreSQL). Times are integer milliseconds since
-- the Unix epoch, so the same values round-trip on SQLite and Postgres.

CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'engineer', 'approver', 'admin')),
    disabled      BIGINT  NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);

CREATE TABLE sessions (
    id         TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE service_tokens (
    id          TEXT   PRIMARY KEY,
    secret_hash TEXT   NOT NULL,
    service     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    created_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX service_tokens_scope_idx ON service_tokens (service, environment);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    target    TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);

CREATE TABLE audit_head (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq  BIGINT NOT NULL,
    last_hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
