-- Several API nodes serve one room: each running job names the node that claimed it, and each
-- node says it is alive (runtime/migrations/0010_nodes.sql on SQLite).
ALTER TABLE job_queue ADD COLUMN claimed_by TEXT;

CREATE TABLE nodes (
    node_id     TEXT NOT NULL PRIMARY KEY,
    started_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL
);
