-- +goose Up
-- Times are Unix milliseconds (UTC). u64 values (build ids, ticks) are stored as their two's-complement int64.

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY,
    device_id        TEXT    NOT NULL UNIQUE,
    firmware_version TEXT    NOT NULL DEFAULT '',
    build_id         INTEGER NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL DEFAULT 'unknown',
    first_seen       INTEGER NOT NULL,
    last_seen        INTEGER NOT NULL,
    device_key       INTEGER,
    name             TEXT,
    tags             TEXT,
    provisioned_by   TEXT,
    provisioned_at   INTEGER
);
CREATE UNIQUE INDEX devices_device_key ON devices (device_key) WHERE device_key IS NOT NULL;
CREATE INDEX devices_last_seen ON devices (last_seen);

-- Metric names repeat in every sample; a dictionary keeps a sample at a few bytes.
CREATE TABLE metric_keys (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- value: counter or gauge value, histogram minimum; NULL stands for NaN (SQLite stores NaN as NULL).
CREATE TABLE metrics (
    id          INTEGER PRIMARY KEY,
    device_id   INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id      INTEGER NOT NULL REFERENCES metric_keys (id),
    type        INTEGER NOT NULL,
    value       REAL,
    max         REAL,
    raw         BLOB,
    ticks       INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX metrics_device_time ON metrics (device_id, received_at);
CREATE INDEX metrics_time ON metrics (received_at);

CREATE TABLE faults (
    id             INTEGER PRIMARY KEY,
    device_id      INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    fault_type     INTEGER NOT NULL,
    r0 INTEGER NOT NULL, r1 INTEGER NOT NULL, r2 INTEGER NOT NULL, r3 INTEGER NOT NULL,
    r12 INTEGER NOT NULL, lr INTEGER NOT NULL, pc INTEGER NOT NULL, xpsr INTEGER NOT NULL,
    r4 INTEGER NOT NULL, r5 INTEGER NOT NULL, r6 INTEGER NOT NULL, r7 INTEGER NOT NULL,
    r8 INTEGER NOT NULL, r9 INTEGER NOT NULL, r10 INTEGER NOT NULL, r11 INTEGER NOT NULL,
    sp             INTEGER NOT NULL,
    stack          BLOB    NOT NULL, -- 16 little-endian u32 words
    cfsr           INTEGER NOT NULL,
    hfsr           INTEGER NOT NULL,
    mmfar          INTEGER NOT NULL,
    bfar           INTEGER NOT NULL,
    symbol         TEXT,
    crash_group_id INTEGER,
    received_at    INTEGER NOT NULL
);
CREATE INDEX faults_device_time ON faults (device_id, received_at);
CREATE INDEX faults_time ON faults (received_at);

CREATE TABLE reboots (
    id                   INTEGER PRIMARY KEY,
    device_id            INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    reason               INTEGER NOT NULL,
    extra                INTEGER NOT NULL,
    boot_sequence        INTEGER NOT NULL,
    uptime_before_reboot INTEGER NOT NULL,
    received_at          INTEGER NOT NULL
);
CREATE INDEX reboots_device_time ON reboots (device_id, received_at);
CREATE INDEX reboots_time ON reboots (received_at);

CREATE TABLE heartbeats (
    id            INTEGER PRIMARY KEY,
    device_id     INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    uptime_ticks  INTEGER NOT NULL,
    free_stack    INTEGER NOT NULL,
    metrics_count INTEGER NOT NULL,
    frames_lost   INTEGER NOT NULL,
    device_key    INTEGER NOT NULL,
    received_at   INTEGER NOT NULL
);
CREATE INDEX heartbeats_device_time ON heartbeats (device_id, received_at);

-- Fragments wait here until the fragment flagged LAST arrives, possibly in a later request.
CREATE TABLE trace_fragments (
    id          INTEGER PRIMARY KEY,
    device_id   INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    byte_offset INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX trace_fragments_device ON trace_fragments (device_id, byte_offset);

CREATE TABLE traces (
    id          INTEGER PRIMARY KEY,
    device_id   INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    data        BLOB    NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX traces_device_time ON traces (device_id, received_at);
CREATE INDEX traces_time ON traces (received_at);

CREATE TABLE ota_requests (
    id             INTEGER PRIMARY KEY,
    device_id      INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    build_id       INTEGER NOT NULL,
    max_chunk_size INTEGER NOT NULL,
    ota_capable    INTEGER NOT NULL,
    received_at    INTEGER NOT NULL
);
CREATE INDEX ota_requests_device_time ON ota_requests (device_id, received_at);
CREATE INDEX ota_requests_time ON ota_requests (received_at);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE settings;
DROP TABLE ota_requests;
DROP TABLE traces;
DROP TABLE trace_fragments;
DROP TABLE heartbeats;
DROP TABLE reboots;
DROP TABLE faults;
DROP TABLE metrics;
DROP TABLE metric_keys;
DROP TABLE devices;
