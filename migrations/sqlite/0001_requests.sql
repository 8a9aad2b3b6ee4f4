-- Requests and everything that happens to them. Times are Unix milliseconds.
CREATE TABLE requests (
    id                  TEXT PRIMARY KEY,
    nonce               TEXT NOT NULL,
    state               TEXT NOT NULL,
    action_kind         TEXT NOT NULL,
    action_json         TEXT NOT NULL,
    action_hash         TEXT NOT NULL,
    service             TEXT,
    environment         TEXT,
    requester           TEXT NOT NULL,
    requester_chat_id   TEXT NOT NULL,
    platform            TEXT NOT NULL,
    channel             TEXT NOT NULL,
    thread              TEXT,
    notes_json          TEXT NOT NULL DEFAULT '[]',
    approvers_json      TEXT,
    approver            TEXT,
    approval_expires_at BIGINT,
    expires_at          BIGINT,
    result_url          TEXT,
    error               TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    version             BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX requests_state ON requests (state);

-- The audit log: who did what, when, from which chat.
CREATE TABLE request_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    chat        TEXT NOT NULL,
    transition  TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX request_events_request ON request_events (request_id, id);

CREATE TABLE approvals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    approver    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    action_hash TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX approvals_request ON approvals (request_id);

-- Chat events already handled (a retried webhook is acknowledged, not redone).
CREATE TABLE processed_events (
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (platform, event_id)
);

-- Messages to send; a row leaves only when delivered (or given up on).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    platform        TEXT NOT NULL,
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    user_id         TEXT,
    card_key        TEXT,
    thread_key      TEXT,
    thread_ref      TEXT,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_pending ON outbox (status, next_attempt_at, id);

-- Where each card was posted, so it can be updated in place and threaded under.
CREATE TABLE cards (
    card_key    TEXT PRIMARY KEY,
    platform    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    message_ref TEXT NOT NULL
);
