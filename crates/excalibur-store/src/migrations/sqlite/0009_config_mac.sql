-- An HMAC (key derived from the master key, never stored here) over every row the
-- request path is configured from: rows edited outside Excalibur do not verify.
CREATE TABLE config_mac (
    id INTEGER PRIMARY KEY,
    mac TEXT NOT NULL
);
