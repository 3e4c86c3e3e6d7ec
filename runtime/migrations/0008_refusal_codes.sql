-- A job refused before its charge carries the refusal's stable code beside its words
-- (`mode_not_allowed`, `budget_exhausted`, ...), for partners and tools to act on.
ALTER TABLE job_queue ADD COLUMN error_code TEXT;
