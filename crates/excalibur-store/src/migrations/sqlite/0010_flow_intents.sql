-- Write-ahead flows: a flow about to carry a secret is committed before the request
-- leaves, marked in flight by the gateway instance that sends it; its completion clears
-- the mark. A gateway that dies leaves marked rows, completed as `interrupted` later.
ALTER TABLE flows ADD COLUMN in_flight TEXT;
CREATE INDEX flows_in_flight ON flows (in_flight) WHERE in_flight IS NOT NULL;
