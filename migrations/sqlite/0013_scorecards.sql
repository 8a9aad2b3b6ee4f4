-- Scorecards. check_results: the latest result of a check that something
-- outside Paver knows (CI pushes ci-passing to /hooks/checks; a GitHub
-- workflow run on the default branch counts too), one row per service and
-- check. score_history: a service's level and failing checks each time
-- they changed, so a digest can say what changed since the last one.
-- Times are Unix milliseconds.
CREATE TABLE check_results (
    service    TEXT NOT NULL,
    check_name TEXT NOT NULL,
    passed     BIGINT NOT NULL,
    detail     TEXT,
    source     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (service, check_name)
);

CREATE TABLE score_history (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    level   TEXT NOT NULL,
    failing TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX score_history_service ON score_history (service, at);
