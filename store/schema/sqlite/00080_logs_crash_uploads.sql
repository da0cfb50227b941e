-- +goose Up
-- OTLP log records and detritus crash uploads. Log times are Unix nanoseconds (OTLP's resolution); received_at
-- and crash times are Unix milliseconds like every other table.

-- A source is one (project, device) pair; records carry its id so each row stays small.
CREATE TABLE log_sources (
    id        INTEGER PRIMARY KEY,
    project   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    UNIQUE (project, device_id)
);

-- No foreign key on source_id: the writer takes ids from rows it upserted in the same transaction, and at
-- 100k records/s the per-row parent lookup is measurable.
CREATE TABLE logs (
    id            INTEGER PRIMARY KEY,
    source_id     INTEGER NOT NULL,
    time_ns       INTEGER NOT NULL,
    observed_ns   INTEGER NOT NULL,
    severity      INTEGER NOT NULL,
    severity_text TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    attributes    TEXT    NOT NULL,
    trace_id      TEXT    NOT NULL,
    span_id       TEXT    NOT NULL,
    event_name    TEXT    NOT NULL,
    flags         INTEGER NOT NULL,
    received_at   INTEGER NOT NULL
);
CREATE INDEX logs_source_time ON logs (source_id, time_ns);
CREATE INDEX logs_time ON logs (time_ns);
-- Only warnings and worse are indexed by severity: that is what severity filters look for, and indexing every
-- INFO and DEBUG line cost a fifth of the insert rate. FindLogs adds the literal term that selects this index.
CREATE INDEX logs_severity_time ON logs (severity, time_ns) WHERE severity >= 13;

CREATE TABLE crash_uploads (
    id            INTEGER PRIMARY KEY,
    project       TEXT    NOT NULL,
    install_id    TEXT    NOT NULL,
    platform      TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    crash_time    INTEGER NOT NULL,
    metadata      TEXT    NOT NULL,
    dump_sha256   TEXT    NOT NULL,
    dump_size     INTEGER NOT NULL,
    dump_encoding TEXT    NOT NULL,
    dedup         INTEGER NOT NULL,
    token_id      TEXT    NOT NULL,
    received_at   INTEGER NOT NULL
);
CREATE INDEX crash_uploads_source_time ON crash_uploads (project, install_id, received_at);
CREATE INDEX crash_uploads_time ON crash_uploads (received_at);
CREATE INDEX crash_uploads_dump ON crash_uploads (dump_sha256);

CREATE TABLE crash_attachments (
    id               INTEGER PRIMARY KEY,
    upload_id        INTEGER NOT NULL REFERENCES crash_uploads (id) ON DELETE CASCADE,
    key              TEXT    NOT NULL,
    content_type     TEXT    NOT NULL,
    sha256           TEXT    NOT NULL,
    size             INTEGER NOT NULL,
    content_encoding TEXT    NOT NULL,
    dedup            INTEGER NOT NULL
);
CREATE INDEX crash_attachments_upload ON crash_attachments (upload_id);
CREATE INDEX crash_attachments_sha256 ON crash_attachments (sha256);

-- +goose Down
DROP TABLE crash_attachments;
DROP TABLE crash_uploads;
DROP TABLE logs;
DROP TABLE log_sources;
