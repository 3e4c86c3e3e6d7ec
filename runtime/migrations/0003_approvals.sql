-- The bank's decisions on modules, by hash and partner. Table mode always needs an approval;
-- a policy may require one for isolated mode too.

CREATE TABLE approvals (
    module_sha256  TEXT NOT NULL,
    partner        TEXT NOT NULL,
    decision       TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    decided_by     TEXT NOT NULL,
    comment        TEXT NOT NULL,
    decided_at     TEXT NOT NULL,
    PRIMARY KEY (module_sha256, partner)
);
