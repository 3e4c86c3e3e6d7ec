-- A job's parameters (the partner's input to its module), as a JSON array of [name, value].
ALTER TABLE job_queue ADD COLUMN parameters TEXT NOT NULL DEFAULT '[]';
