-- The pace of each chat channel, shared by every replica: the earliest time
-- (Unix milliseconds) the next send to the channel may start. A send
-- reserves its slot by moving next_at forward in one conditional upsert, so
-- replicas on one database together keep a channel to its pace; a 429
-- pushes next_at out by the platform's Retry-After for all of them.
CREATE TABLE channel_pace (
    platform TEXT NOT NULL,
    channel  TEXT NOT NULL,
    next_at  BIGINT NOT NULL,
    PRIMARY KEY (platform, channel)
);

-- The outbox claims only the oldest pending row of each channel (so a
-- channel's messages go out in order, also across replicas): the older
-- rows of a channel are found by this index.
CREATE INDEX outbox_channel_pending ON outbox (platform, channel, status, id);
