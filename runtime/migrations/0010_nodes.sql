-- Several API nodes may serve one room (on PostgreSQL): each running job names the node that
-- claimed it, and each node says it is alive. A node not seen for a while leaves its running
-- jobs to be marked interrupted by the others.
ALTER TABLE job_queue ADD COLUMN claimed_by TEXT;

CREATE TABLE nodes (
    node_id     TEXT NOT NULL PRIMARY KEY,
    started_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL
);
