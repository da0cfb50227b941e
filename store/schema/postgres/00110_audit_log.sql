-- +goose Up
-- The same model as SQLite's 00110: operator actions, append-only, chained by hash. The head row is read FOR
-- UPDATE by every appender, so replicas appending at once take turns and never fork the chain.
CREATE TABLE audit_log (
    id          bigint PRIMARY KEY,
    time        bigint NOT NULL,
    actor_kind  text   NOT NULL,
    actor       text   NOT NULL,
    actor_id    text   NOT NULL,
    action      text   NOT NULL,
    target_kind text   NOT NULL,
    target      text   NOT NULL,
    before_json text   NOT NULL,
    after_json  text   NOT NULL,
    client_addr text   NOT NULL,
    request_id  text   NOT NULL,
    via         text   NOT NULL,
    prev_hash   text   NOT NULL,
    hash        text   NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target, id);

-- The head row: made by the first append, read FOR UPDATE by every later one.
CREATE TABLE audit_head (
    id        bigint  PRIMARY KEY CHECK (id = 1),
    last_id   bigint  NOT NULL,
    last_hash text    NOT NULL
);

-- +goose Down
DROP TABLE audit_head;
DROP TABLE audit_log;
