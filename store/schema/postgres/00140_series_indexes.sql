-- +goose Up
-- Metric series (GET /devices/{id}/series, GET /series) aggregate one key over a time range. These indexes hold
-- every column the aggregate reads, so a series is an index-only scan of its key, device and range, and its cost
-- follows the samples in range, not the size of the table.
CREATE INDEX metrics_series_device ON metrics (key_id, device_id, received_at) INCLUDE (type, value, max, id);
CREATE INDEX metrics_series_fleet ON metrics (key_id, received_at) INCLUDE (device_id, type, value, max, id);

-- The device list (GET /devices, the console's Devices page) at 100,000 devices. Text orders compare bytes
-- (COLLATE "C", store/postgres deviceOrder), which an index of the database's collation cannot serve, so these
-- indexes let each text order read a page in order instead of sorting the fleet. The name orders put unnamed
-- devices last both ways. Nothing here indexes last_seen or status: ingest rewrites them, and an index on either
-- would end the HOT updates that keep device touches cheap (the last-seen order sorts instead).
CREATE INDEX devices_device_id_c ON devices (device_id COLLATE "C", id);
CREATE INDEX devices_firmware_c ON devices (firmware_version COLLATE "C", id);
CREATE INDEX devices_name_asc ON devices ((name IS NULL), (name COLLATE "C"), id);
CREATE INDEX devices_name_desc ON devices ((name IS NULL), (name COLLATE "C") DESC, id DESC);

-- +goose Down
DROP INDEX devices_name_desc;
DROP INDEX devices_name_asc;
DROP INDEX devices_firmware_c;
DROP INDEX devices_device_id_c;
DROP INDEX metrics_series_fleet;
DROP INDEX metrics_series_device;
