-- +goose Up
-- hawkBit DDI (Linux and Zephyr devices updating with SWUpdate, RAUC's hawkBit updater or Zephyr's client).
-- ddi_actions: each deployment a controller was offered, one per OTA target assignment (target row, its
-- created_at and artifact). status: 'open' (offered), 'canceling' (its target changed after the controller
-- fetched it; a cancelAction is pending), 'canceled', 'closed' (result 'success' or 'failure'), or 'rejected'
-- (the controller refused the cancel). execution/detail: the controller's last feedback.
CREATE TABLE ddi_actions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id         TEXT    NOT NULL,
    target_id         INTEGER NOT NULL,
    target_created_at INTEGER NOT NULL,
    firmware_id       INTEGER NOT NULL,
    campaign_id       INTEGER,
    version           TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    result            TEXT    NOT NULL DEFAULT '',
    execution         TEXT    NOT NULL DEFAULT '',
    detail            TEXT    NOT NULL DEFAULT '',
    retrieved_at      INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX ddi_actions_device ON ddi_actions (device_id, id);

-- MD5 and SHA-1 of artifact bytes, which DDI clients check (SWUpdate compares SHA-1), and the kind of image its
-- first bytes show ('swu' for a cpio SWUpdate image, 'raucb' for a squashfs RAUC bundle, '' otherwise), which names
-- the file for clients that pick files by extension; keyed by the blob's SHA-256, so they never go stale, and
-- computed once, on first use.
CREATE TABLE blob_hashes (
    sha256 TEXT PRIMARY KEY,
    md5    TEXT NOT NULL,
    sha1   TEXT NOT NULL,
    kind   TEXT NOT NULL DEFAULT ''
);

-- A device's attributes as it reports them (DDI configData: hardware revision, serial, ...).
CREATE TABLE device_attributes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (device_id, name)
);

-- +goose Down
DROP TABLE device_attributes;
DROP TABLE blob_hashes;
DROP TABLE ddi_actions;
