-- Ballast foundation schema (SQLite). Times are integer milliseconds since the
-- Unix epoch, so the same values round-trip on SQLite and Postgres.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'engineer', 'approver', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);

-- A login session. The JWT names its session, so logout and disabling a user
-- take effect at once instead of when the token expires.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Service tokens: only a SHA-256 of the secret is kept. The secret is 256
-- random bits, so a slow password hash would add cost and no safety.
CREATE TABLE service_tokens (
    id          TEXT    PRIMARY KEY,
    secret_hash TEXT    NOT NULL,
    service     TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX service_tokens_scope_idx ON service_tokens (service, environment);

-- The audit log is a hash chain: each entry commits to the previous one, and
-- audit_head serialises appenders so that the chain never forks.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq  INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: the application never updates or deletes audit rows, and these
-- triggers make an accidental or casual attempt fail loudly. A determined
-- attacker with the file can drop them; the hash chain is what catches that.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
