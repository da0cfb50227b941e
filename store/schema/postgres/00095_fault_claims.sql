-- +goose Up
-- sym_claim: until when (ms since the epoch) a symbolication worker has claimed a pending fault, so that replicas
-- sharing the database do not symbolicate the same fault at once. NULL: never claimed.
ALTER TABLE faults ADD COLUMN sym_claim bigint;

-- +goose Down
ALTER TABLE faults DROP COLUMN sym_claim;
