-- +goose Up
-- Alerts and retention. alert_deliveries is the webhook queue and delivery log: a row per alert and webhook,
-- retried with backoff until delivered or given up, so retries survive a restart. alert_watch holds the devices
-- whose offline alert went out, so that their return is reported once. Times are Unix milliseconds.
CREATE TABLE alert_deliveries (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    device_id     TEXT    NOT NULL DEFAULT '',
    url           TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    dedup_key     TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_status   INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    next_attempt  INTEGER NOT NULL,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    delivered_at  INTEGER
);
CREATE UNIQUE INDEX alert_deliveries_dedup ON alert_deliveries (dedup_key, url);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt) WHERE status = 'pending';
CREATE INDEX alert_deliveries_created ON alert_deliveries (created_at);

CREATE TABLE alert_watch (
    device_id  TEXT    PRIMARY KEY,
    offline_at INTEGER NOT NULL
);

-- Retention deletes by age in batches; these tables had no index on received_at alone.
CREATE INDEX heartbeats_time ON heartbeats (received_at);
CREATE INDEX trace_fragments_time ON trace_fragments (received_at);

-- +goose Down
DROP INDEX trace_fragments_time;
DROP INDEX heartbeats_time;
DROP TABLE alert_watch;
DROP TABLE alert_deliveries;
