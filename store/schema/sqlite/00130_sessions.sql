-- +goose Up
-- Console sessions. The cookie's secret is kept as its hex SHA-256 only; times are Unix milliseconds.
CREATE TABLE sessions (
    hash       TEXT    PRIMARY KEY,
    user_name  TEXT    NOT NULL,
    role       INTEGER NOT NULL,
    via        TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- +goose Down
DROP TABLE sessions;
