CREATE TABLE namespaces (
    name TEXT PRIMARY KEY,
    allowed_domains TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE workload_tokens (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    namespace TEXT NOT NULL,
    attestation TEXT NOT NULL,
    source TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    details TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE TABLE seen_jti (
    jti TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
