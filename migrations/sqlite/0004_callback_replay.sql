-- Signatures of orchestrator callbacks already accepted: a callback is
-- accepted once, on whichever replica it reaches. Rows older than the
-- signature tolerance are pruned (their timestamps refuse them anyway).
CREATE TABLE callback_replay (
    signature TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX callback_replay_seen_at ON callback_replay (seen_at);
