-- Who denied a request and why, as the approver typed it in the Deny
-- form: the card shows both ("Denied by dave: not before the freeze ends").
-- Denials from before this column have no reason.
ALTER TABLE requests ADD COLUMN denied_by TEXT;
ALTER TABLE requests ADD COLUMN denial_reason TEXT;
