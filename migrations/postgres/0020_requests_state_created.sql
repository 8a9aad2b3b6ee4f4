-- The sweeper reads only the requests due to expire (a state and a time
-- before a cut-off), not every request in the state: by state, then by
-- when made. It replaces the index on state alone.
--
-- Partial, over the states a request can still leave: a settled request
-- is never swept, and, with the index unusable for a bare `state = $1`,
-- a prepared statement's generic plan cannot take it over the primary key
-- for `id = $1 AND state = $2` (a transition's guard). The index on state
-- alone was taken so on a table planned while empty (no statistics yet,
-- or autovacuum off): every transition read every request in its state.
-- A sweeper query writes its state into its text, so every plan of it,
-- generic ones too, can use this.
DROP INDEX requests_state;
CREATE INDEX requests_open ON requests (state, created_at)
    WHERE state NOT IN ('succeeded', 'expired', 'cancelled', 'denied');
