-- Whether a failed request's Retry can help (0: the action itself cannot
-- succeed as it stands; ask again differently). Null on older rows: 1.
ALTER TABLE requests ADD COLUMN retryable BIGINT;
-- What must happen before this request can succeed, found when it was
-- proposed (an action as JSON: "create production for basket-service
-- first"); the card offers it instead of the confirming button.
ALTER TABLE requests ADD COLUMN first_action_json TEXT;
