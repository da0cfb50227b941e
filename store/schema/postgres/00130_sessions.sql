-- +goose Up
-- The same model as SQLite's 00130: console sessions, the cookie's secret kept as its hex SHA-256.
CREATE TABLE sessions (
    hash       text     PRIMARY KEY,
    user_name  text     NOT NULL,
    role       smallint NOT NULL,
    via        text     NOT NULL,
    created_at bigint   NOT NULL,
    last_seen  bigint   NOT NULL,
    expires_at bigint   NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- Unlike SQLite's 00130, no index on devices.status for the console's fleet breakdowns: ingest rewrites status,
-- and an index on it would end the HOT updates that keep device touches cheap. The console reuses a breakdown
-- for 10 s instead.

-- +goose Down
DROP TABLE sessions;
