-- The sweeper reads only the requests due to expire (a state and a time
-- before a cut-off), not every request in the state: by state, then by
-- when made, which also orders `in_state`'s answer. It replaces the index
-- on state alone, of which it is a prefix. (PostgreSQL's is partial, for
-- its generic plans; SQLite plans `id = ?` by the primary key.)
DROP INDEX requests_state;
CREATE INDEX requests_state_created ON requests (state, created_at);
