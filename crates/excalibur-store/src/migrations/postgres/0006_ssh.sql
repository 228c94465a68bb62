CREATE TABLE ssh_routes (
    id TEXT PRIMARY KEY,
    route TEXT NOT NULL,
    key_id TEXT,
    sealed BYTEA,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE ssh_sessions (
    id TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    started_ms BIGINT NOT NULL
);
CREATE INDEX ssh_sessions_state ON ssh_sessions (state, started_ms);
