-- +goose Up
-- A managed user can be disabled (kept, with their history, but refused at sign-in); Unix milliseconds, NULL while
-- enabled.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
-- Ending or updating a user's console sessions when the user changes looks them up by name.
CREATE INDEX sessions_user_name ON sessions (user_name);

-- +goose Down
DROP INDEX sessions_user_name;
ALTER TABLE users DROP COLUMN disabled_at;
