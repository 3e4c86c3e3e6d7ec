-- A room's schema on PostgreSQL: the tables runtime/migrations/0001-0009 build on SQLite, with
-- BIGINT for every integer and BYTEA for bytes. Keep the two in step: tests/postgres_rooms.rs
-- checks that both have the same tables and columns.

CREATE TABLE budgets (
    partner         TEXT    NOT NULL,
    dataset         TEXT    NOT NULL,
    total_nano_rho  BIGINT  NOT NULL CHECK (total_nano_rho >= 0),
    PRIMARY KEY (partner, dataset)
);

CREATE TABLE charges (
    job_id          TEXT    NOT NULL PRIMARY KEY,
    partner         TEXT    NOT NULL,
    dataset         TEXT    NOT NULL,
    cost_nano_rho   BIGINT  NOT NULL CHECK (cost_nano_rho >= 0),
    charged_at      TEXT    NOT NULL,
    domain          TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX charges_by_budget ON charges (partner, dataset);
CREATE INDEX charges_by_domain ON charges (partner, domain, charged_at);

CREATE TABLE dataset_domains (
    dataset  TEXT NOT NULL PRIMARY KEY,
    domain   TEXT NOT NULL
);

CREATE TABLE policies (
    partner         TEXT    NOT NULL,
    dataset         TEXT    NOT NULL,
    policy_toml     TEXT    NOT NULL,
    policy_sha256   TEXT    NOT NULL,
    set_at          TEXT    NOT NULL,
    PRIMARY KEY (partner, dataset)
);

CREATE TABLE jobs (
    job_id          TEXT    NOT NULL PRIMARY KEY,
    partner         TEXT    NOT NULL,
    dataset         TEXT    NOT NULL,
    module_sha256   TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    result_json     TEXT,
    receipt         TEXT,
    bank_detail     TEXT,
    finished_at     TEXT    NOT NULL,
    release_at      TEXT
);

CREATE TABLE job_diagnostics (
    job_id  TEXT NOT NULL PRIMARY KEY,
    salt    TEXT NOT NULL,
    text    TEXT NOT NULL
);

CREATE TABLE audit_entries (
    idx                  BIGINT  NOT NULL PRIMARY KEY,
    entry                TEXT    NOT NULL,
    leaf_hash            BYTEA   NOT NULL,
    tree_head_signature  TEXT    NOT NULL
);

CREATE TABLE audit_frontier (
    id     BIGINT  NOT NULL PRIMARY KEY CHECK (id = 1),
    size   BIGINT  NOT NULL,
    nodes  BYTEA   NOT NULL
);

CREATE TABLE approvals (
    module_sha256  TEXT NOT NULL,
    partner        TEXT NOT NULL,
    decision       TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    decided_by     TEXT NOT NULL,
    comment        TEXT NOT NULL,
    decided_at     TEXT NOT NULL,
    parameters     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (module_sha256, partner)
);

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
    entities       BIGINT NOT NULL,
    uploaded_at    TEXT NOT NULL,
    quarantined    TEXT
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
    finished_at    TEXT,
    parameters     TEXT NOT NULL DEFAULT '[]',
    release_at     TEXT,
    error_code     TEXT,
    sql_text       TEXT
);

CREATE INDEX job_queue_state ON job_queue (state, submitted_at);
