-- +goose Up
-- The audit log: operator actions, append-only, each entry chained to the previous one by hash (see
-- lodestone.AuditEntry.ComputeHash). Ids are handed out by the appender (previous + 1) so a gap shows. time is Unix
-- milliseconds; before_json and after_json are kept as the exact text that was hashed.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    time        INTEGER NOT NULL,
    actor_kind  TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    actor_id    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_kind TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    before_json TEXT    NOT NULL,
    after_json  TEXT    NOT NULL,
    client_addr TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    via         TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target, id);

-- The chain head: one row naming the newest entry, made by the first append (so a copy finds the table empty). Appenders read and update it in their transaction, which
-- serialises them, and a deleted newest entry shows against it.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);

-- +goose Down
DROP TABLE audit_head;
DROP TABLE audit_log;
