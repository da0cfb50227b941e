package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

// inTx runs a transaction that PostgreSQL aborted for a deadlock again, so both sides of a real one succeed.
func TestInTxRetriesDeadlock(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	db, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pgtest.CheckDeadlockRetry(t, url, func(what string, body func(func(int) error) error) error {
		return db.inTx(ctx, what, func(tx pgx.Tx) error {
			return body(func(id int) error {
				_, err := tx.Exec(ctx, pgtest.ProbeUpdate, id)
				return err
			})
		})
	})
}
