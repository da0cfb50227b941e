-- +goose Up
-- Metric series (GET /devices/{id}/series, GET /series) aggregate one key over a time range. These indexes hold
-- every column the aggregate reads, so a series is an index-only scan of its key, device and range, and its cost
-- follows the samples in range, not the size of the table.
CREATE INDEX metrics_series_device ON metrics (key_id, device_id, received_at) INCLUDE (type, value, max, id);
CREATE INDEX metrics_series_fleet ON metrics (key_id, received_at) INCLUDE (device_id, type, value, max, id);

-- +goose Down
DROP INDEX metrics_series_fleet;
DROP INDEX metrics_series_device;
