-- The room as a service: parties and their credentials, uploaded datasets and modules, and the
-- persisted job queue. Plain SQL types only (TEXT, INTEGER), so the same statements run on
-- PostgreSQL.

CREATE TABLE parties (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('bank', 'partner', 'auditor')),
    token_id      TEXT NOT NULL UNIQUE,
    token_sha256  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);

CREATE TABLE datasets (
    name           TEXT PRIMARY KEY,
    header_sha256  TEXT NOT NULL,
    file           TEXT NOT NULL,
    sealed_by      TEXT NOT NULL,
    schema_toml    TEXT NOT NULL,
    entities       INTEGER NOT NULL,
    uploaded_at    TEXT NOT NULL
);

CREATE TABLE audience_lists (
    list_sha256   TEXT PRIMARY KEY,
    partner       TEXT NOT NULL,
    file          TEXT NOT NULL,
    uploaded_at   TEXT NOT NULL
);

CREATE TABLE modules (
    module_sha256  TEXT NOT NULL,
    partner        TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        TEXT NOT NULL,
    mode           TEXT NOT NULL,
    uploaded_at    TEXT NOT NULL,
    PRIMARY KEY (module_sha256, partner)
);

CREATE TABLE job_queue (
    job_id         TEXT PRIMARY KEY,
    partner        TEXT NOT NULL,
    dataset        TEXT NOT NULL,
    module_sha256  TEXT NOT NULL,
    cost           TEXT NOT NULL,
    audience       TEXT,
    state          TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'failed')),
    error          TEXT,
    submitted_at   TEXT NOT NULL,
    finished_at    TEXT
);

CREATE INDEX job_queue_state ON job_queue (state, submitted_at);
