CREATE TABLE crypto_mappings (
    id TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    provider_id TEXT NOT NULL REFERENCES providers (id),
    config TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX crypto_mappings_family ON crypto_mappings (family, id);
