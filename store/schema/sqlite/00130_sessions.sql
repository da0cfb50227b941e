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

-- The console's fleet breakdowns (by status, by firmware, online share) read these covering indexes instead of
-- the devices table.
CREATE INDEX devices_status_firmware ON devices (status, firmware_version);
CREATE INDEX devices_firmware_status ON devices (firmware_version, status);

-- +goose Down
DROP INDEX devices_firmware_status;
DROP INDEX devices_status_firmware;
DROP TABLE sessions;
