-- A SQL job carries its query text: the room compiles it when the job runs and runs the
-- policy's SQL engine module with the plan. NULL for a module job.
ALTER TABLE job_queue ADD COLUMN sql_text TEXT;
