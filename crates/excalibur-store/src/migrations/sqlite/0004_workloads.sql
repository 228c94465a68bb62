CREATE TABLE namespaces (
    name TEXT PRIMARY KEY,
    allowed_domains TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
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
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE seen_jti (
    jti TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
