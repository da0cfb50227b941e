-- +goose Up
-- Metric series of devices (GET /devices/{id}/series, GET /series?device_id=, and the fleet of a group or tag,
-- which probes each member) aggregate one key of one device over a time range. This index holds every column the
-- aggregate reads, so such a series reads only the index entries of its key, device and range, never table rows,
-- and its cost follows the samples in range, not the size of the table.
CREATE INDEX metrics_series_device ON metrics (key_id, device_id, received_at, type, value, max);

-- A fleet series covers up to millions of samples, more than SQLite aggregates in a page's time, so each key's
-- samples are also summed per minute as they are written (these triggers), and a fleet series (its step is whole
-- minutes) adds up these rows; it reads samples (by metrics_time) only for the partial minutes at its ends. A
-- per-key time index would serve fleet series from the samples instead, but it costs every write about a quarter
-- of the ingest rate (README, Design notes). total and nv are the sum and count of the series values (a
-- histogram's midpoint; NULL for NaN), mn and mx the minimum and maximum, last_* the latest sample by time then row
-- id. A deleted sample removes its rollup when it was the last one, and otherwise marks it dirty: store/sqlite
-- reads that rollup's samples instead, and recomputes it.
CREATE TABLE metric_rollups (
    key_id     INTEGER NOT NULL,
    bucket     INTEGER NOT NULL, -- Unix ms, a multiple of 60,000 (1 minute)
    n          INTEGER NOT NULL,
    nv         INTEGER NOT NULL,
    total      REAL,
    mn         REAL,
    mx         REAL,
    last_at    INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    last_value REAL,
    dirty      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, bucket)
) WITHOUT ROWID;

INSERT INTO metric_rollups (key_id, bucket, n, nv, total, mn, mx, last_at, last_id, last_value)
SELECT g.key_id, g.bucket, g.n, g.nv, g.total, g.mn, g.mx, g.last_at, l.id,
       CASE WHEN l.type = 2 THEN (l.value + l.max) / 2 ELSE l.value END
FROM (SELECT key_id, received_at - received_at % 60000 AS bucket, count(*) AS n,
             count(CASE WHEN type = 2 THEN (value + max) / 2 ELSE value END) AS nv,
             sum(CASE WHEN type = 2 THEN (value + max) / 2 ELSE value END) AS total, min(value) AS mn,
             max(CASE WHEN type = 2 THEN max ELSE value END) AS mx, max(received_at) AS last_at
      FROM metrics WHERE type IN (0, 1, 2) GROUP BY key_id, bucket) g
JOIN metrics l ON l.id = (SELECT max(id) FROM metrics m WHERE m.received_at = g.last_at AND +m.key_id = g.key_id
                          AND m.type IN (0, 1, 2));

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
        -- min(), max() and + of a NULL are NULL; a NaN sample must not erase the others.
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

-- +goose StatementBegin
CREATE TRIGGER metrics_rollup_delete AFTER DELETE ON metrics WHEN OLD.type IN (0, 1, 2)
BEGIN
    -- n counts the rollup's samples exactly (every insert and delete passes here), so a rollup with none left goes
    -- (retention empties old ones this way) without reading samples; one with some left is stale.
    UPDATE metric_rollups SET n = n - 1, dirty = 1
    WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000;
    DELETE FROM metric_rollups
    WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000 AND n <= 0;
END;
-- +goose StatementEnd

-- The device list (GET /devices, the console's Devices page) at 100,000 devices: each filter and order it offers
-- reads one index in order and stops after a page. devices_last_seen also holds what a search reads, so a search
-- scans the index, not the table. The name orders put unnamed devices last both ways, without a sort.
DROP INDEX devices_last_seen;
CREATE INDEX devices_last_seen ON devices (last_seen, id, device_id, name);
CREATE INDEX devices_status_seen ON devices (status, last_seen);
CREATE INDEX devices_firmware_seen ON devices (firmware_version, last_seen);
CREATE INDEX devices_name_asc ON devices (name IS NULL, name);
CREATE INDEX devices_name_desc ON devices (name IS NOT NULL, name);

-- +goose Down
DROP INDEX devices_name_desc;
DROP INDEX devices_name_asc;
DROP INDEX devices_firmware_seen;
DROP INDEX devices_status_seen;
DROP INDEX devices_last_seen;
CREATE INDEX devices_last_seen ON devices (last_seen);
DROP TRIGGER metrics_rollup_delete;
DROP TRIGGER metrics_rollup_insert;
DROP TABLE metric_rollups;
DROP INDEX metrics_series_device;
