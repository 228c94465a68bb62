-- The kill switch as a standing deny: a principal listed here exchanges no subject
-- token until an admin lifts the revocation.
CREATE TABLE principal_revocations (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL UNIQUE,
    actor TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
