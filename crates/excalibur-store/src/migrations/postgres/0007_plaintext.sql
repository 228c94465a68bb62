-- A provider may opt in to cleartext upstream legs (dangerous; off by default).
ALTER TABLE providers ADD COLUMN dangerous_allow_plaintext BOOLEAN NOT NULL DEFAULT FALSE;
