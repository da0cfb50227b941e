-- +goose Up
-- Symbolication: uploaded ELF files, the firmware each fault was stored under, the backtrace and decoded causes
-- the workers found, and crash groups (issues) over symbolicated signatures.

CREATE TABLE elfs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    version    TEXT    NOT NULL,
    build_id   TEXT    NOT NULL, -- GNU build id, hex; '' without one
    build_id64 INTEGER NOT NULL, -- its first 8 bytes as a device reports them; 0 without one
    sha256     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    filename   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX elfs_version ON elfs (version, id);
CREATE INDEX elfs_build ON elfs (build_id64, id) WHERE build_id64 <> 0;
CREATE INDEX elfs_sha256 ON elfs (sha256);

CREATE TABLE crash_groups (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    signature             TEXT    NOT NULL UNIQUE,
    pc                    INTEGER NOT NULL,
    fault_type            INTEGER NOT NULL,
    title                 TEXT,
    state                 TEXT    NOT NULL DEFAULT 'open',
    first_seen            INTEGER NOT NULL,
    last_seen             INTEGER NOT NULL,
    occurrence_count      INTEGER NOT NULL DEFAULT 0,
    affected_device_count INTEGER NOT NULL DEFAULT 0,
    regression            INTEGER NOT NULL DEFAULT 0,
    resolved_version      TEXT,
    merged_into           INTEGER
);
CREATE INDEX crash_groups_count ON crash_groups (occurrence_count DESC, id);

-- firmware_version/build_id: what the device ran when the fault was stored (set by the trigger below).
-- sym_state: 0 pending, 1 symbolicated, 2 waiting for an ELF of its firmware.
ALTER TABLE faults ADD COLUMN firmware_version TEXT;
ALTER TABLE faults ADD COLUMN build_id INTEGER;
ALTER TABLE faults ADD COLUMN sym_state INTEGER NOT NULL DEFAULT 0;
ALTER TABLE faults ADD COLUMN elf_id INTEGER;
ALTER TABLE faults ADD COLUMN backtrace TEXT; -- JSON
ALTER TABLE faults ADD COLUMN causes TEXT;    -- JSON
CREATE INDEX faults_pending ON faults (id) WHERE sym_state = 0;
CREATE INDEX faults_waiting_version ON faults (firmware_version) WHERE sym_state = 2;
CREATE INDEX faults_waiting_build ON faults (build_id) WHERE sym_state = 2;
CREATE INDEX faults_crash_group ON faults (crash_group_id, device_id);

-- Faults are rare next to metrics, so one lookup per fault costs ingest nothing measurable, and it records the
-- firmware of the session the fault came in even if the device updates before the workers get to it.
-- +goose StatementBegin
CREATE TRIGGER faults_firmware AFTER INSERT ON faults WHEN NEW.firmware_version IS NULL
BEGIN
    UPDATE faults SET (firmware_version, build_id) =
        (SELECT firmware_version, build_id FROM devices WHERE id = NEW.device_id)
    WHERE id = NEW.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER faults_firmware;
DROP INDEX faults_crash_group;
DROP INDEX faults_waiting_build;
DROP INDEX faults_waiting_version;
DROP INDEX faults_pending;
ALTER TABLE faults DROP COLUMN causes;
ALTER TABLE faults DROP COLUMN backtrace;
ALTER TABLE faults DROP COLUMN elf_id;
ALTER TABLE faults DROP COLUMN sym_state;
ALTER TABLE faults DROP COLUMN build_id;
ALTER TABLE faults DROP COLUMN firmware_version;
DROP TABLE crash_groups;
DROP TABLE elfs;
