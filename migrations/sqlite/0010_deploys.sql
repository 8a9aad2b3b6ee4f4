-- Deploy notifications. Every accepted hook delivery is a row of
-- deploy_events (the history a report reads). Events for one service in one
-- environment within a window share one notice, posted once per destination
-- and then edited in place; a notice is open until the window closes.
-- At most one notice per (service, environment) is open: the partial unique
-- index makes two replicas opening one at once collide, and the loser joins
-- the winner's. Times are Unix milliseconds.
CREATE TABLE deploy_notices (
    id          TEXT PRIMARY KEY,
    service     TEXT NOT NULL,
    environment TEXT NOT NULL,
    is_open     BIGINT NOT NULL DEFAULT 1,
    opened_at   BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    rev         BIGINT NOT NULL DEFAULT 0,
    steps       TEXT NOT NULL,
    url         TEXT,
    link        TEXT,
    message     TEXT,
    commit_sha  TEXT,
    request_id  TEXT
);
CREATE UNIQUE INDEX deploy_notices_one_open ON deploy_notices (service, environment) WHERE is_open = 1;
CREATE INDEX deploy_notices_recent ON deploy_notices (service, environment, opened_at);

-- Where a notice was posted: one card (outbox card_key) per destination.
CREATE TABLE deploy_notice_cards (
    card_key   TEXT PRIMARY KEY,
    notice_id  TEXT NOT NULL,
    platform   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    thread_key TEXT
);
CREATE INDEX deploy_notice_cards_notice ON deploy_notice_cards (notice_id);

CREATE TABLE deploy_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    delivery    TEXT NOT NULL,
    service     TEXT NOT NULL,
    environment TEXT NOT NULL,
    version     TEXT,
    status      TEXT NOT NULL,
    notice_id   TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX deploy_events_service ON deploy_events (service, environment, at);
