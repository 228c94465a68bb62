-- Re-exchange after a restart: a subject token seen before may be exchanged again from
-- the address that first exchanged it (its earlier bearer is revoked); an admin's
-- revocation of that bearer marks the token so it is not.
ALTER TABLE seen_jti ADD COLUMN source TEXT;
ALTER TABLE seen_jti ADD COLUMN bearer TEXT;
ALTER TABLE seen_jti ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
