-- +goose Up
-- Device groups (ferrite's device_groups and device_group_members) and the tags of each device, split from its
-- free-text tags so lists can filter by tag. Every table has an id so `lodestone copy` can page through it.
CREATE TABLE device_groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE device_group_members (
    id        INTEGER PRIMARY KEY,
    group_id  INTEGER NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    added_at  INTEGER NOT NULL,
    UNIQUE (group_id, device_id)
);
CREATE INDEX device_group_members_device ON device_group_members (device_id);

CREATE TABLE device_tags (
    id        INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tag       TEXT    NOT NULL,
    UNIQUE (device_id, tag)
);
CREATE INDEX device_tags_tag ON device_tags (tag, device_id);

CREATE INDEX devices_firmware ON devices (firmware_version);

-- +goose Down
DROP INDEX devices_firmware;
DROP TABLE device_tags;
DROP TABLE device_group_members;
DROP TABLE device_groups;
