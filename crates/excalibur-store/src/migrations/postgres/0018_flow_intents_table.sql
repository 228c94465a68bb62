-- Flows in flight (write-ahead intents) get a table of their own. An intent was a flow
-- row with three indexes to update, twice; now it is one small row at the end of one
-- small b-tree, committed on its own, and the completion (written in a later batch)
-- inserts the flow and deletes the intent in one transaction.
CREATE TABLE flow_intents (
    id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO flow_intents (id, gateway, body)
    SELECT id, in_flight, body FROM flows WHERE in_flight IS NOT NULL;
DELETE FROM flows WHERE in_flight IS NOT NULL;
DROP INDEX flows_in_flight;
ALTER TABLE flows DROP COLUMN in_flight;
