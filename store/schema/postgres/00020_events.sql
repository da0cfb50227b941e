-- Live events shared by replicas (event.PGBus). Rows are written by Publish and read by every replica's listener
-- after a NOTIFY; the leader trims old ones. data is json, not jsonb, so that the stream sends the exact text that
-- was published (jsonb would reorder keys).

-- +goose Up
CREATE TABLE events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type      text NOT NULL,
    device_id text NOT NULL DEFAULT '',
    time      timestamptz NOT NULL,
    data      json NOT NULL
);
CREATE INDEX events_time ON events (time);

-- +goose Down
DROP TABLE events;
