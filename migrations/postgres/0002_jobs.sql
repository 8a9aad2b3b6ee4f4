-- The durable job queue: one row per run of an approved request (a Retry
-- press makes a new row). Workers claim due rows with a lease; a lease that
-- runs out (a crashed worker) makes the row claimable again. Times are Unix
-- milliseconds.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL REFERENCES requests (id),
    -- 1 for the first run of the request, 2 after the first Retry press, …
    generation      BIGINT NOT NULL,
    -- Passed to the driver on every attempt of this row: never done twice.
    idempotency_key TEXT NOT NULL UNIQUE,
    -- queued | running | succeeded | failed
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    run_at          BIGINT NOT NULL,
    lease_until     BIGINT,
    owner           TEXT,
    last_error      TEXT,
    -- What the driver must remember across attempts (a Backstage task id).
    checkpoint      TEXT,
    -- The latest status an orchestrator posted to /hooks/orchestrator/{id}.
    callback        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- At most one live job per request.
CREATE UNIQUE INDEX jobs_one_live_per_request ON jobs (request_id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_due ON jobs (state, run_at);
