-- Copies of a request's card posted where its approvers look (the owning
-- team's channel, their DMs). Each is a card of its own (its message ref
-- is in `cards` under this key) and is updated with the original, so
-- every copy shows the same state. `mentions_json`: whom the copy asked.
CREATE TABLE card_copies (
    card_key      TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL REFERENCES requests (id),
    platform      TEXT NOT NULL,
    channel       TEXT NOT NULL,
    audience      TEXT NOT NULL,
    mentions_json TEXT NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL
);
CREATE INDEX card_copies_request ON card_copies (request_id);

-- What approvers were told about one approval round (`round`: the id of
-- the request_events row that asked for approval), once each: the first
-- insert wins, on any replica, and the messages are queued in its
-- transaction.
CREATE TABLE approval_notices (
    request_id TEXT NOT NULL REFERENCES requests (id),
    round      BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (request_id, round, kind)
);

-- Requests already waiting when this arrives were asked the old way (in
-- their thread): that round counts as told, so an upgrade posts nothing
-- twice; they still get their reminder.
INSERT INTO approval_notices (request_id, round, kind, at)
SELECT r.id, MAX(e.id), 'asked', 0
FROM requests r
JOIN request_events e ON e.request_id = r.id AND e.transition = 'need_approval'
WHERE r.state = 'awaiting_approval'
GROUP BY r.id;
