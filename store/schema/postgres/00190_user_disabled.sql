-- +goose Up
-- The same as SQLite's 00190: a managed user can be disabled (Unix milliseconds, NULL while enabled), and a user's
-- console sessions are found by name.
ALTER TABLE users ADD COLUMN disabled_at bigint;
CREATE INDEX sessions_user_name ON sessions (user_name);

-- +goose Down
DROP INDEX sessions_user_name;
ALTER TABLE users DROP COLUMN disabled_at;
