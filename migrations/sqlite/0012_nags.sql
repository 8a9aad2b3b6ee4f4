-- Scorecard nags. nag_digests: one digest per team and period (the cron's
-- fire time), recorded before it is sent, in the transaction that queues
-- its messages, so two schedulers racing send one. entries_json holds
-- what it listed (service, check, weight, state), so the next digest can
-- say what changed and escalation can count digests in a row.
-- nag_items: each failing check a digest listed, the target of its
-- buttons (id and nonce, like a request's). nag_marks: a check snoozed
-- until a time, or marked won't fix with a reason. nag_lease: the one
-- scheduler that looks for due digests at a time. Times are Unix ms.
CREATE TABLE nag_digests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    team         TEXT NOT NULL,
    period       BIGINT NOT NULL,
    card_key     TEXT NOT NULL,
    platform     TEXT NOT NULL,
    channel      TEXT NOT NULL,
    entries_json TEXT NOT NULL,
    escalated    TEXT NOT NULL,
    at           BIGINT NOT NULL,
    UNIQUE (team, period)
);
CREATE INDEX nag_digests_team ON nag_digests (team, at);

CREATE TABLE nag_items (
    id         TEXT PRIMARY KEY,
    nonce      TEXT NOT NULL,
    digest_id  BIGINT NOT NULL,
    service    TEXT NOT NULL,
    check_name TEXT NOT NULL,
    state      TEXT NOT NULL,
    note       TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX nag_items_digest ON nag_items (digest_id);

CREATE TABLE nag_marks (
    service    TEXT NOT NULL,
    check_name TEXT NOT NULL,
    kind       TEXT NOT NULL,
    until      BIGINT,
    reason     TEXT,
    by_whom    TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (service, check_name)
);

CREATE TABLE nag_lease (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
