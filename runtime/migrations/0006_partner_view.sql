-- What a partner may observe about a job, and nothing more.
--
-- Privacy domains: the datasets that describe the same people share one budget per partner.
-- Charges are summed per (partner, domain); a dataset's domain is recorded the first time it is
-- charged (from its policy, or the party that sealed it).
ALTER TABLE charges ADD COLUMN domain TEXT NOT NULL DEFAULT '';
UPDATE charges SET domain = dataset WHERE domain = '';
CREATE INDEX charges_by_domain ON charges (partner, domain, charged_at);

CREATE TABLE dataset_domains (
    dataset  TEXT NOT NULL PRIMARY KEY,
    domain   TEXT NOT NULL
);

-- When a job's outcome becomes visible to its partner: fixed before the run.
ALTER TABLE jobs ADD COLUMN release_at TEXT;
ALTER TABLE job_queue ADD COLUMN release_at TEXT;

-- Text a module printed, kept for the bank outside the log's leaves. The log commits to it by
-- SHA-256(salt || text), so the leaf hash reveals nothing of it.
CREATE TABLE job_diagnostics (
    job_id  TEXT NOT NULL PRIMARY KEY,
    salt    TEXT NOT NULL,
    text    TEXT NOT NULL
);

-- An approval covers parameters too: a JSON object of name -> {"values": [...]} or
-- {"min": a, "max": b}. Empty: the module is approved only with no parameters.
ALTER TABLE approvals ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}';
