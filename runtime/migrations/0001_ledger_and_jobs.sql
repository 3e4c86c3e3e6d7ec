-- The privacy ledger, policies and jobs. Portable SQL: the same statements run on SQLite and
-- PostgreSQL (integers for amounts, text for identifiers and timestamps).

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
    charged_at      TEXT    NOT NULL
);

CREATE INDEX charges_by_budget ON charges (partner, dataset);

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
    status          TEXT    NOT NULL,   -- released | held | withheld | failed
    result_json     TEXT,
    receipt         TEXT,
    bank_detail     TEXT,               -- trap text, guest error, captured stderr: bank only
    finished_at     TEXT    NOT NULL
);
