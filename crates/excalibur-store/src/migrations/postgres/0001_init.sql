CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    wrapped BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE sealed_settings (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES data_keys(id),
    sealed BYTEA NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE TABLE providers (
    id TEXT PRIMARY KEY,
    hosts TEXT NOT NULL,
    passthrough BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE placeholders (
    name TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL REFERENCES providers(id),
    route_family TEXT NOT NULL,
    key_id TEXT NOT NULL REFERENCES data_keys(id),
    sealed BYTEA NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    rotated_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE service_credentials (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    "user" TEXT NOT NULL,
    source_network TEXT NOT NULL,
    allowed_domains TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    revoked_reason TEXT
);
CREATE TABLE translation_rules (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE flows (
    rowid BIGSERIAL,
    id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    principal TEXT NOT NULL,
    host TEXT NOT NULL,
    decision TEXT NOT NULL
);
CREATE INDEX flows_ts ON flows(ts_ms);
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    ts TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    type TEXT NOT NULL,
    principal TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_ts ON audit_events(ts_ms);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);
