-- Replicas that want live events stored (event.PGBus): one row per replica that has had a subscriber within the
-- replay grace period. Writers store events only while some row's until lies in the future, so a cluster nobody
-- watches does not write its whole ingest stream a second time. Transient, like events.

-- +goose Up
CREATE TABLE event_listeners (
    replica text        PRIMARY KEY,
    until   timestamptz NOT NULL
);

-- +goose Down
DROP TABLE event_listeners;
