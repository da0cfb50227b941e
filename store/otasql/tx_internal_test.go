package otasql

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

// OTA transactions that PostgreSQL aborted for a deadlock run again, so both sides of a real one succeed.
func TestTxRetriesDeadlock(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := NewPostgres(db)
	pgtest.CheckDeadlockRetry(t, url, func(what string, body func(func(int) error) error) error {
		return s.tx(ctx, what, func(tx *sql.Tx) error {
			return body(func(id int) error {
				_, err := tx.ExecContext(ctx, pgtest.ProbeUpdate, id)
				return err
			})
		})
	})
}
