-- The per-row configuration MACs in a table of their own, so a write updates the
-- entries of the rows it changed instead of rewriting one document of all of them.
-- (`config_mac.rows` then holds the marker `table`.)
CREATE TABLE config_row_macs (
    row_key TEXT PRIMARY KEY,
    mac TEXT NOT NULL
);
