-- The hash of the action the requester confirmed, set by the confirm
-- transition in the same UPDATE that checks the button's nonce. The executor
-- refuses a request whose action no longer hashes to it.
ALTER TABLE requests ADD COLUMN confirmed_hash TEXT;
