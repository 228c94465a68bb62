-- Flows are listed and paged by their recording sequence (`rowid`, the `seq` of
-- `GET /api/flows`): an index so newest-first pages do not sort the table.
CREATE INDEX flows_rowid ON flows(rowid);
