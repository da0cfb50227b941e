-- +goose Up
-- Metric rows now hold only the points younger than the sealing horizon (00170; 15 to 30 minutes), so a series
-- read finds a device's rows through metrics_device_time in a few hundred entries, and the covering index by key
-- no longer pays for itself: ordered by key, it put each group commit's rows on as many pages as there are keys,
-- a third of what a metric row cost to write (BenchmarkMetricWriteCost). Sealing lists its work by device.
DROP INDEX metrics_series_device;

-- The writer (store/sqlite/write.go) sums a transaction's samples per key and minute and merges each sum into
-- metric_rollups once, where this trigger ran an upsert per row: a group commit of 3,000 samples of six keys is a
-- dozen upserts. Every metric row is written by that writer; anything else that inserts rows must do the same.
DROP TRIGGER metrics_rollup_insert;

-- +goose Down
-- +goose StatementBegin
CREATE TRIGGER metrics_rollup_insert AFTER INSERT ON metrics WHEN NEW.type IN (0, 1, 2)
BEGIN
    INSERT INTO metric_rollups (key_id, bucket, n, nv, total, mn, mx, last_at, last_id, last_value)
    VALUES (NEW.key_id, NEW.received_at - NEW.received_at % 60000, 1,
            CASE WHEN NEW.type = 2 THEN (NEW.value + NEW.max) / 2 ELSE NEW.value END IS NOT NULL,
            CASE WHEN NEW.type = 2 THEN (NEW.value + NEW.max) / 2 ELSE NEW.value END, NEW.value,
            CASE WHEN NEW.type = 2 THEN NEW.max ELSE NEW.value END, NEW.received_at, NEW.id,
            CASE WHEN NEW.type = 2 THEN (NEW.value + NEW.max) / 2 ELSE NEW.value END)
    ON CONFLICT (key_id, bucket) DO UPDATE SET
        n = n + 1,
        nv = nv + excluded.nv,
        total = coalesce(total + excluded.total, total, excluded.total),
        mn = min(coalesce(mn, excluded.mn), coalesce(excluded.mn, mn)),
        mx = max(coalesce(mx, excluded.mx), coalesce(excluded.mx, mx)),
        last_value = CASE WHEN (excluded.last_at, excluded.last_id) > (last_at, last_id) THEN excluded.last_value
                          ELSE last_value END,
        last_id = CASE WHEN (excluded.last_at, excluded.last_id) > (last_at, last_id) THEN excluded.last_id
                       ELSE last_id END,
        last_at = max(last_at, excluded.last_at);
END;
-- +goose StatementEnd
CREATE INDEX metrics_series_device ON metrics (key_id, device_id, received_at, type, value, max);
