-- The kill switch: a principal revoked at this time exchanges no subject token issued before it.
CREATE TABLE principal_revocations (
    principal TEXT PRIMARY KEY,
    revoked_ms BIGINT NOT NULL
);
