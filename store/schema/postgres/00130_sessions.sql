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

-- +goose Down
DROP TABLE sessions;
