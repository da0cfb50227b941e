-- +goose Up
-- Metric series (GET /devices/{id}/series, GET /series) aggregate one key over a time range. These indexes hold
-- every column the aggregate reads, so a series reads only the index entries of its key, device and range, never
-- table rows, and its cost follows the samples in range, not the size of the table.
CREATE INDEX metrics_series_device ON metrics (key_id, device_id, received_at, type, value, max);
CREATE INDEX metrics_series_fleet ON metrics (key_id, received_at, device_id, type, value, max);

-- +goose Down
DROP INDEX metrics_series_fleet;
DROP INDEX metrics_series_device;
