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

-- The console's fleet breakdowns (by status, by firmware, online share) read these covering indexes instead of
-- the devices table.
CREATE INDEX devices_status_firmware ON devices (status, firmware_version);
CREATE INDEX devices_firmware_status ON devices (firmware_version, status);

-- +goose Down
DROP INDEX devices_firmware_status;
DROP INDEX devices_status_firmware;
DROP TABLE sessions;
