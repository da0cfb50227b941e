-- Live events shared by replicas (event.PGBus). Each row is one batch written by a replica's writer: count events,
-- encoded in data as a JSON array of {type, device_id, time, data} objects; event ids are id << 12 | index within
-- the row. Every replica's listener reads new rows after a NOTIFY; the leader trims old ones. data is text, not
-- json, so that PostgreSQL neither parses it nor changes the exact text that was published. time is the newest
-- event time in the batch, for trimming by age.

-- +goose Up
CREATE TABLE events (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time  timestamptz NOT NULL,
    count integer NOT NULL CHECK (count BETWEEN 1 AND 4096),
    data  text NOT NULL
);
CREATE INDEX events_time ON events (time);

-- +goose Down
DROP TABLE events;
