-- +goose Up
-- Users an admin manages through the API, and bearer credentials: API tokens (a role) and device keys (one
-- device's ingest). Secrets are never stored: passwords as bcrypt, tokens as the hex SHA-256 of the secret.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- device_id has no foreign key: a key may be issued before the device first reports.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    device_id    TEXT,
    hint         TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX tokens_device ON tokens (device_id) WHERE device_id IS NOT NULL;

-- +goose Down
DROP TABLE tokens;
DROP TABLE users;
