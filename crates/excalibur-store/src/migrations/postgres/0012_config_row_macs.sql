-- One authenticator per configuration row (HMAC over its table, key and values), kept
-- beside the MAC over all of them, so a failed check names the rows that changed.
ALTER TABLE config_mac ADD COLUMN rows TEXT;
