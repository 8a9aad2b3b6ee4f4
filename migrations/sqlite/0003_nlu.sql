-- How each request was understood: which path answered (rules, llm or
-- rules_fallback), how long it took, the LLM's tokens and model, and the
-- version of the prompt used. Null for requests from before this migration.
ALTER TABLE requests ADD COLUMN nlu_path TEXT;
ALTER TABLE requests ADD COLUMN nlu_latency_ms BIGINT;
ALTER TABLE requests ADD COLUMN nlu_llm_calls BIGINT;
ALTER TABLE requests ADD COLUMN nlu_prompt_tokens BIGINT;
ALTER TABLE requests ADD COLUMN nlu_completion_tokens BIGINT;
ALTER TABLE requests ADD COLUMN nlu_model TEXT;
ALTER TABLE requests ADD COLUMN nlu_prompt_version TEXT;

-- Follow-ups: a reply in a thread finds the request whose card is there.
CREATE INDEX cards_message_ref ON cards (platform, channel, message_ref);
CREATE INDEX requests_thread ON requests (platform, channel, thread);
