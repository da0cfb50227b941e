-- +goose Up
-- detritus bearer tokens created through the API (the token file's stay in the file). The secret is kept as its
-- hex SHA-256 only; revoked_at and created_at are Unix milliseconds.
CREATE TABLE otlp_tokens (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    project       TEXT    NOT NULL,
    source_prefix TEXT    NOT NULL,
    hint          TEXT    NOT NULL,
    hash          TEXT    NOT NULL UNIQUE,
    created_by    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

-- +goose Down
DROP TABLE otlp_tokens;
