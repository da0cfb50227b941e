-- +goose Up
-- Sealed metric points (store/sqlite/blocks.go): the points of one series (device, key) older than a horizon,
-- encoded by store/metricblock (delta-of-delta times, ids and ticks, XOR floats) at a few bytes each, against a
-- hundred for a row of metrics and its index entries. Recent points stay rows; a background compactor seals them.
-- Every read of points reads both. t_min and t_max are the block's first and last received_at; a block spans at
-- most 12 hours (sealMaxSpan), so a time range finds its blocks by t_max alone.
CREATE TABLE metric_blocks (
    id        INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id    INTEGER NOT NULL REFERENCES metric_keys (id),
    t_min     INTEGER NOT NULL,
    t_max     INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    data      BLOB NOT NULL
);
CREATE INDEX metric_blocks_series ON metric_blocks (key_id, device_id, t_max);
CREATE INDEX metric_blocks_device ON metric_blocks (device_id, t_max);
CREATE INDEX metric_blocks_time ON metric_blocks (t_max, key_id);
-- A fleet series reads one key's blocks of a time range across every device (the partial minutes at its ends);
-- t_min in the entry answers "does the block reach into the range" without reading the block.
CREATE INDEX metric_blocks_key_time ON metric_blocks (key_id, t_max, t_min);

-- Sealing moves points from metrics into blocks: the 1-minute rollups already counted them, so neither the rows'
-- delete nor a rewritten block's may touch them. The compactor sets this setting inside its own transaction only,
-- so no other transaction ever sees it.
DROP TRIGGER metrics_rollup_delete;
-- +goose StatementBegin
CREATE TRIGGER metrics_rollup_delete AFTER DELETE ON metrics
WHEN OLD.type IN (0, 1, 2) AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'metrics.sealing')
BEGIN
    UPDATE metric_rollups SET n = n - 1, dirty = 1
    WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000;
    DELETE FROM metric_rollups
    WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000 AND n <= 0;
END;
-- +goose StatementEnd

-- A deleted block (retention, a deleted device) makes the rollups of its minutes stale: reads then recompute them
-- from rows and blocks. Retention drops the rollups of whole minutes past its cutoff itself.
-- +goose StatementBegin
CREATE TRIGGER metric_blocks_rollup_delete AFTER DELETE ON metric_blocks
WHEN NOT EXISTS (SELECT 1 FROM settings WHERE key = 'metrics.sealing')
BEGIN
    UPDATE metric_rollups SET dirty = 1
    WHERE key_id = OLD.key_id AND bucket >= OLD.t_min - OLD.t_min % 60000 AND bucket <= OLD.t_max;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER metric_blocks_rollup_delete;
DROP TRIGGER metrics_rollup_delete;
-- +goose StatementBegin
CREATE TRIGGER metrics_rollup_delete AFTER DELETE ON metrics WHEN OLD.type IN (0, 1, 2)
BEGIN
    UPDATE metric_rollups SET n = n - 1, dirty = 1
    WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000;
    DELETE FROM metric_rollups
    WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000 AND n <= 0;
END;
-- +goose StatementEnd
DROP TABLE metric_blocks;
