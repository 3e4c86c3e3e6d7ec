-- A dataset that could not be opened for a job (its content fails the checks a job trusts, or
-- its decoder failed) is quarantined: no job runs on it until the bank uploads it again, so a
-- restart does not retry it forever.
ALTER TABLE datasets ADD COLUMN quarantined TEXT;
