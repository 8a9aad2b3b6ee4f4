-- The estimated monthly cost of what a request creates (a new environment,
-- resources added), recorded with the request: the known total in cents
-- (NULL when the action creates nothing) and the estimate's lines as JSON
-- (currency, item, cents or null where the price table had none).
ALTER TABLE requests ADD COLUMN monthly_cost_cents BIGINT;
ALTER TABLE requests ADD COLUMN cost_json TEXT;
