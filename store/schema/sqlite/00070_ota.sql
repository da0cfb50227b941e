-- +goose Up
-- Firmware updates: artifacts (bytes in the blob store), one target per device, campaigns and their devices.
-- Times are Unix milliseconds; u64 build ids their two's complement.
CREATE TABLE firmware_artifacts (
    id         INTEGER PRIMARY KEY,
    version    TEXT    NOT NULL,
    build_id   INTEGER NOT NULL DEFAULT 0,
    sha256     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    filename   TEXT    NOT NULL UNIQUE,
    signer     TEXT,
    notes      TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE INDEX firmware_artifacts_sha256 ON firmware_artifacts (sha256);

CREATE TABLE ota_campaigns (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    firmware_id       INTEGER NOT NULL REFERENCES firmware_artifacts (id),
    target_version    TEXT    NOT NULL,
    strategy          TEXT    NOT NULL,
    target_group_id   INTEGER,
    target_tags       TEXT,
    rollout_percent   INTEGER NOT NULL,
    failure_threshold REAL    NOT NULL,
    waves             TEXT    NOT NULL, -- comma-separated cumulative percentages
    soak_ms           INTEGER NOT NULL,
    health_ratio      REAL    NOT NULL,
    min_device_hours  REAL    NOT NULL,
    offer_timeout_ms  INTEGER NOT NULL,
    install_timeout_ms INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    wave              INTEGER NOT NULL DEFAULT -1,
    wave_started_at   INTEGER,
    started_at        INTEGER,
    halt_reason       TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX ota_campaigns_status ON ota_campaigns (status);

CREATE TABLE ota_targets (
    id              INTEGER PRIMARY KEY,
    device_id       TEXT    NOT NULL UNIQUE,
    target_version  TEXT    NOT NULL,
    target_build_id INTEGER NOT NULL DEFAULT 0,
    firmware_url    TEXT,
    firmware_id     INTEGER REFERENCES firmware_artifacts (id) ON DELETE SET NULL,
    from_version    TEXT,
    campaign_id     INTEGER REFERENCES ota_campaigns (id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX ota_targets_firmware ON ota_targets (firmware_id);

CREATE TABLE ota_campaign_devices (
    id                   INTEGER PRIMARY KEY,
    campaign_id          INTEGER NOT NULL REFERENCES ota_campaigns (id) ON DELETE CASCADE,
    device_id            TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    wave                 INTEGER NOT NULL DEFAULT -1,
    reason               TEXT    NOT NULL DEFAULT '',
    offered_at           INTEGER,
    installed_at         INTEGER,
    updated_at           INTEGER NOT NULL,
    had_prev             INTEGER NOT NULL DEFAULT 0, -- 1 when the device had a target before the campaign's
    prev_target_version  TEXT,
    prev_target_build_id INTEGER,
    prev_firmware_url    TEXT,
    prev_firmware_id     INTEGER,
    prev_from_version    TEXT,
    prev_campaign_id     INTEGER,
    UNIQUE (campaign_id, device_id)
);
CREATE INDEX ota_campaign_devices_status ON ota_campaign_devices (campaign_id, status);

-- +goose Down
DROP TABLE ota_campaign_devices;
DROP TABLE ota_targets;
DROP TABLE ota_campaigns;
DROP TABLE firmware_artifacts;
