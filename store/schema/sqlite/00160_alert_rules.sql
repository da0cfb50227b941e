-- +goose Up
-- Alert rules and alert states. A state row is one rule's finding for one key (a device, a crash issue, a
-- firmware version, or the whole scope); every change of state is a conditional update of that row, so replicas
-- that race to fire or resolve the same alert make the change, and queue its deliveries, exactly once.
-- threshold and webhooks are JSON. Times are Unix milliseconds; 0 stands for never.
CREATE TABLE alert_rules (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    condition   TEXT    NOT NULL,
    scope_type  TEXT    NOT NULL,
    scope_value TEXT    NOT NULL DEFAULT '',
    threshold   TEXT    NOT NULL DEFAULT '{}',
    window_ms   INTEGER NOT NULL DEFAULT 0,
    for_ms      INTEGER NOT NULL DEFAULT 0,
    quiet_ms    INTEGER NOT NULL DEFAULT 0,
    webhooks    TEXT    NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    origin      TEXT    NOT NULL DEFAULT 'api',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE alert_states (
    id          INTEGER PRIMARY KEY,
    rule_id     INTEGER NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    key         TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    since       INTEGER NOT NULL,
    last_event  INTEGER NOT NULL DEFAULT 0,
    events      INTEGER NOT NULL DEFAULT 0,
    fired_at    INTEGER NOT NULL DEFAULT 0,
    resolved_at INTEGER NOT NULL DEFAULT 0,
    value       REAL    NOT NULL DEFAULT 0,
    summary     TEXT    NOT NULL DEFAULT '',
    UNIQUE (rule_id, key)
);
CREATE INDEX alert_states_status ON alert_states (status, since);

-- +goose Down
DROP TABLE alert_states;
DROP TABLE alert_rules;
