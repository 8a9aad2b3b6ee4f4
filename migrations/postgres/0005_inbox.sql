-- Inbound chat events, stored before they are acknowledged: an event Paver
-- answered 200 to is in this table, so a crash or a database hiccup after
-- the acknowledgement cannot lose it. (platform, event_id) is unique: a
-- redelivery finds its row and is acknowledged without being handled again.
-- A worker holds a row by its lease while handling it; a row still pending
-- when its lease runs out (a crashed replica) is taken again by recovery.
-- Times are Unix milliseconds.
CREATE TABLE inbox (
    id          BIGSERIAL PRIMARY KEY,
    platform    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    received_at BIGINT NOT NULL,
    done_at     BIGINT,
    UNIQUE (platform, event_id)
);
CREATE INDEX inbox_pending ON inbox (platform, status, lease_until);

-- Outbox claims filter by platform in SQL.
CREATE INDEX outbox_platform_pending ON outbox (platform, status, next_attempt_at, id);
-- Card updates are coalesced: the pending update of a card is found by key.
CREATE INDEX outbox_card_updates ON outbox (card_key, kind, status);
