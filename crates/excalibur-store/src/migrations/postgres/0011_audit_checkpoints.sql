-- Signed tree heads over the audit log (RFC 9162 Merkle tree); `frontier` is the tree's
-- right edge at `tree_size`, so the next checkpoint reads only the events after it.
CREATE TABLE audit_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root_hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    frontier TEXT NOT NULL
);
