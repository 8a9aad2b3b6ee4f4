-- The platform report (issue 18). Lead time for changes runs from a
-- commit's time to its production deploy, so deploy events keep the commit
-- they carried and when it was made, where the sender says (a GitHub
-- workflow run's head commit, the generic hook's `commit_at`).
ALTER TABLE deploy_events ADD COLUMN commit_sha TEXT;
ALTER TABLE deploy_events ADD COLUMN commit_at BIGINT;

-- The report reads a window of history by time.
CREATE INDEX deploy_events_at ON deploy_events (at);
CREATE INDEX requests_created ON requests (created_at);

-- One weekly digest per period, recorded in the transaction that queues
-- it, so two replicas (or a lease lost mid-run) never post it twice.
CREATE TABLE report_digests (
    period   BIGINT PRIMARY KEY,
    platform TEXT NOT NULL,
    channel  TEXT NOT NULL,
    at       BIGINT NOT NULL
);
