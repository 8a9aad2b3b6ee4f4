-- Each channel's oldest pending message, found by the dispatcher's claim
-- from the pending rows alone (sent ones, kept until retention prunes
-- them, are not in this index).
CREATE INDEX outbox_pending_heads ON outbox (platform, channel, id) WHERE status = 'pending';
