-- Flows are listed and paged by their recording sequence (the implicit `rowid`, the
-- `seq` of `GET /api/flows`), which SQLite indexes already: nothing new to build.
CREATE INDEX IF NOT EXISTS flows_ts ON flows(ts_ms);
