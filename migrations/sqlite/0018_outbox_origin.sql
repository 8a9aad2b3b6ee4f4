-- The inbound event (and the count within its handling) a message was
-- posted for: `platform:event#n`. A crash mid-handling leaves the event to
-- be handled again, and the messages its first handling queued already
-- are then not queued a second time. Null for messages no chat event
-- caused (jobs, schedulers, hooks) and for edits.
ALTER TABLE outbox ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX outbox_origin ON outbox (origin) WHERE origin IS NOT NULL;
