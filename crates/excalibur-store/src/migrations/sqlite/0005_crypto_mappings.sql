CREATE TABLE crypto_mappings (
    id TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    provider_id TEXT NOT NULL REFERENCES providers (id),
    config TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX crypto_mappings_family ON crypto_mappings (family, id);
