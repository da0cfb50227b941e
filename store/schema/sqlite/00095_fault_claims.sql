-- +goose Up
-- sym_claim: until when (ms since the epoch) a symbolication worker has claimed a pending fault (see the
-- PostgreSQL migration of the same number, where several replicas share the table). NULL: never claimed.
ALTER TABLE faults ADD COLUMN sym_claim INTEGER;

-- +goose Down
ALTER TABLE faults DROP COLUMN sym_claim;
