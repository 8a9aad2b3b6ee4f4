-- Retention: the locked scheduler (lease "retention" in nag_lease) prunes
-- in batches by age. These indexes let each batch find its oldest rows
-- without scanning the table: handled inbox events and dedupe rows by when
-- they arrived, finished outbox rows by when they were queued, finished
-- jobs by when they ended (and a request's later generations by request).
CREATE INDEX processed_events_at ON processed_events (at);
CREATE INDEX inbox_finished ON inbox (status, received_at);
CREATE INDEX outbox_finished ON outbox (status, created_at);
CREATE INDEX jobs_finished ON jobs (state, updated_at);
CREATE INDEX jobs_request_generation ON jobs (request_id, generation);
-- The audit export reads the log by time.
CREATE INDEX request_events_at ON request_events (at);
CREATE INDEX approvals_at ON approvals (at);
