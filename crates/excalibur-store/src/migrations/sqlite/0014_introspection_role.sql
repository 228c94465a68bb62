-- API tokens may have the `introspection` role (only POST /v1/introspect). SQLite cannot
-- alter a CHECK constraint: the table is rebuilt.
CREATE TABLE api_tokens_new (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'introspection')),
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
INSERT INTO api_tokens_new (id, name, role, prefix, hash, created_ms, revoked_ms)
    SELECT id, name, role, prefix, hash, created_ms, revoked_ms FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
