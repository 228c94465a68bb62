CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
