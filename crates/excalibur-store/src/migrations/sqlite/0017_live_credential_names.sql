-- One live service credential per name: creating one looks the name up among the live
-- ones. Without this index each creation scanned the table (importing 100,000 sets
-- was quadratic).
CREATE INDEX IF NOT EXISTS service_credentials_live_name ON service_credentials (name) WHERE revoked_ms IS NULL;
