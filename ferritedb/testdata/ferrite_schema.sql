-- ferrite-server's SQLite schema after its migrations (spec §4.3): the CREATE TABLE statements, then the
-- ALTER TABLE ... ADD COLUMN migrations and the indexes.
PRAGMA foreign_keys = ON;
CREATE TABLE devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL UNIQUE,
    firmware_version TEXT NOT NULL DEFAULT '',
    build_id INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT NOT NULL DEFAULT (datetime('now')),
    last_seen TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE crash_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signature_hash TEXT NOT NULL UNIQUE,
    pc INTEGER NOT NULL,
    fault_type INTEGER NOT NULL,
    first_seen TEXT NOT NULL DEFAULT (datetime('now')),
    last_seen TEXT NOT NULL DEFAULT (datetime('now')),
    occurrence_count INTEGER NOT NULL DEFAULT 1,
    affected_device_count INTEGER NOT NULL DEFAULT 1,
    title TEXT
);
CREATE TABLE fault_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_rowid INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    fault_type INTEGER NOT NULL,
    pc INTEGER NOT NULL,
    lr INTEGER NOT NULL,
    cfsr INTEGER NOT NULL,
    hfsr INTEGER NOT NULL,
    mmfar INTEGER NOT NULL,
    bfar INTEGER NOT NULL,
    sp INTEGER NOT NULL,
    stack_snapshot TEXT NOT NULL DEFAULT '[]',
    symbol TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_rowid INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    metric_type INTEGER NOT NULL,
    value_json TEXT NOT NULL,
    timestamp_ticks INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE reboot_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_rowid INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    reason INTEGER NOT NULL,
    extra INTEGER NOT NULL DEFAULT 0,
    boot_sequence INTEGER NOT NULL DEFAULT 0,
    uptime_before_reboot INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE device_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE device_group_members (
    group_id INTEGER NOT NULL REFERENCES device_groups(id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    added_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (group_id, device_id)
);
CREATE TABLE ota_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL UNIQUE,
    target_version TEXT NOT NULL,
    target_build_id INTEGER NOT NULL DEFAULT 0,
    firmware_url TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE firmware_artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version TEXT NOT NULL,
    build_id INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    filename TEXT NOT NULL,
    signer TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE ota_campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    firmware_id INTEGER NOT NULL REFERENCES firmware_artifacts(id),
    target_version TEXT NOT NULL,
    strategy TEXT NOT NULL DEFAULT 'immediate',
    target_group_id INTEGER REFERENCES device_groups(id),
    target_tags TEXT,
    rollout_percent INTEGER NOT NULL DEFAULT 100,
    failure_threshold REAL NOT NULL DEFAULT 5.0,
    status TEXT NOT NULL DEFAULT 'created',
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE ota_campaign_devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES ota_campaigns(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    updated_at TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (campaign_id, device_id)
);
ALTER TABLE devices ADD COLUMN device_key INTEGER;
ALTER TABLE devices ADD COLUMN name TEXT;
ALTER TABLE devices ADD COLUMN status TEXT DEFAULT 'unknown';
ALTER TABLE devices ADD COLUMN tags TEXT;
ALTER TABLE devices ADD COLUMN provisioned_by TEXT;
ALTER TABLE devices ADD COLUMN provisioned_at TEXT;
ALTER TABLE fault_events ADD COLUMN crash_group_id INTEGER REFERENCES crash_groups(id);
CREATE INDEX idx_fault_device ON fault_events(device_rowid);
CREATE INDEX idx_metrics_device ON metrics(device_rowid);
CREATE INDEX idx_reboot_device ON reboot_events(device_rowid);
CREATE INDEX idx_crash_groups_count ON crash_groups(occurrence_count DESC);
CREATE UNIQUE INDEX idx_devices_key ON devices(device_key);
