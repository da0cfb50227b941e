-- +goose Up
-- Fleet health (GET /stability, GET /devices/{id}/timeline). Both tables are kept by triggers, so every write
-- path (ingest, imports, copies) keeps them without knowing about them.
--
-- stability_hours: per hour, device and firmware version, how long the device was observed, and the faults and
-- unexpected reboots it reported. A contact (any session that moves devices.last_seen forward) observes the
-- time since the device's previous contact, up to one hour (3,600,000 ms: a device silent for longer may have
-- been off), credited to the hour of the contact and the version the device reports in it. Faults and reboots
-- count for the version the device ran when they arrived. The stability report and the campaign health gate
-- both read this table, so they agree. Reboots count when their reason is unexpected: watchdog (3), the four
-- faults (4-7), a failed assertion (8), brownout (10).
CREATE TABLE stability_hours (
    hour        INTEGER NOT NULL,
    device_id   INTEGER NOT NULL,
    version     TEXT    NOT NULL,
    observed_ms INTEGER NOT NULL DEFAULT 0,
    faults      INTEGER NOT NULL DEFAULT 0,
    reboots     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, device_id, version)
) WITHOUT ROWID;

-- The unexpected reboots of stability_hours by reason.
CREATE TABLE stability_reboots (
    hour      INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    version   TEXT    NOT NULL,
    reason    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (hour, device_id, version, reason)
) WITHOUT ROWID;

-- device_events: what changed on a device, for its timeline. kind 'firmware' (from_value → to_value, the first
-- version reported comes from ''), 'online' and 'offline' (status changes; an offline event is dated at the last
-- contact), 'ota' (a campaign's or DDI action's state for the device: to_value the state, from_value what it is
-- about, e.g. 'campaign 3' or 'ddi 12', detail the reason or feedback).
CREATE TABLE device_events (
    id         INTEGER PRIMARY KEY,
    device_id  TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    from_value TEXT    NOT NULL DEFAULT '',
    to_value   TEXT    NOT NULL DEFAULT '',
    detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX device_events_device ON device_events (device_id, at, id);
CREATE INDEX device_events_time ON device_events (at);
-- Which version a version's devices ran before it (the report's comparison).
CREATE INDEX device_events_firmware ON device_events (to_value, from_value) WHERE kind = 'firmware';

-- +goose StatementBegin
CREATE TRIGGER stability_contact AFTER UPDATE OF last_seen ON devices WHEN NEW.last_seen > OLD.last_seen
BEGIN
    INSERT INTO stability_hours (hour, device_id, version, observed_ms)
    VALUES (NEW.last_seen - NEW.last_seen % 3600000, NEW.id, NEW.firmware_version,
        min(NEW.last_seen - OLD.last_seen, 3600000))
    ON CONFLICT (hour, device_id, version) DO UPDATE SET observed_ms = observed_ms + excluded.observed_ms;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER stability_fault AFTER INSERT ON faults
BEGIN
    INSERT INTO stability_hours (hour, device_id, version, faults)
    VALUES (NEW.received_at - NEW.received_at % 3600000, NEW.device_id,
        coalesce(NEW.firmware_version, (SELECT firmware_version FROM devices WHERE id = NEW.device_id), ''), 1)
    ON CONFLICT (hour, device_id, version) DO UPDATE SET faults = faults + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER stability_reboot AFTER INSERT ON reboots WHEN NEW.reason IN (3, 4, 5, 6, 7, 8, 10)
BEGIN
    INSERT INTO stability_hours (hour, device_id, version, reboots)
    VALUES (NEW.received_at - NEW.received_at % 3600000, NEW.device_id,
        coalesce((SELECT firmware_version FROM devices WHERE id = NEW.device_id), ''), 1)
    ON CONFLICT (hour, device_id, version) DO UPDATE SET reboots = reboots + 1;
    INSERT INTO stability_reboots (hour, device_id, version, reason, n)
    VALUES (NEW.received_at - NEW.received_at % 3600000, NEW.device_id,
        coalesce((SELECT firmware_version FROM devices WHERE id = NEW.device_id), ''), NEW.reason, 1)
    ON CONFLICT (hour, device_id, version, reason) DO UPDATE SET n = n + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER device_events_insert AFTER INSERT ON devices
BEGIN
    INSERT INTO device_events (device_id, kind, at, to_value)
    SELECT NEW.device_id, 'firmware', NEW.last_seen, NEW.firmware_version WHERE NEW.firmware_version <> '';
    INSERT INTO device_events (device_id, kind, at)
    SELECT NEW.device_id, 'online', NEW.last_seen WHERE NEW.status = 'online';
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER device_events_firmware AFTER UPDATE OF firmware_version ON devices
WHEN NEW.firmware_version <> OLD.firmware_version
BEGIN
    INSERT INTO device_events (device_id, kind, at, from_value, to_value)
    VALUES (NEW.device_id, 'firmware', NEW.last_seen, OLD.firmware_version, NEW.firmware_version);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER device_events_status AFTER UPDATE OF status ON devices
WHEN NEW.status <> OLD.status AND NEW.status IN ('online', 'offline')
BEGIN
    INSERT INTO device_events (device_id, kind, at) VALUES (NEW.device_id, NEW.status, NEW.last_seen);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER device_events_campaign AFTER UPDATE OF status ON ota_campaign_devices
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO device_events (device_id, kind, at, from_value, to_value, detail)
    VALUES (NEW.device_id, 'ota', NEW.updated_at, 'campaign ' || NEW.campaign_id, NEW.status, NEW.reason);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER device_events_ddi_insert AFTER INSERT ON ddi_actions
BEGIN
    INSERT INTO device_events (device_id, kind, at, from_value, to_value, detail)
    VALUES (NEW.device_id, 'ota', NEW.created_at, 'ddi ' || NEW.id, NEW.status, NEW.version);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER device_events_ddi AFTER UPDATE OF status, execution ON ddi_actions
WHEN NEW.status <> OLD.status OR NEW.execution <> OLD.execution
BEGIN
    INSERT INTO device_events (device_id, kind, at, from_value, to_value, detail)
    VALUES (NEW.device_id, 'ota', NEW.updated_at, 'ddi ' || NEW.id,
        CASE WHEN NEW.status = 'closed' THEN 'closed ' || NEW.result ELSE NEW.status END,
        CASE WHEN NEW.execution <> '' THEN NEW.execution || ': ' || NEW.detail ELSE NEW.version END);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER device_events_ddi;
DROP TRIGGER device_events_ddi_insert;
DROP TRIGGER device_events_campaign;
DROP TRIGGER device_events_status;
DROP TRIGGER device_events_firmware;
DROP TRIGGER device_events_insert;
DROP TRIGGER stability_reboot;
DROP TRIGGER stability_fault;
DROP TRIGGER stability_contact;
DROP TABLE device_events;
DROP TABLE stability_reboots;
DROP TABLE stability_hours;
