package pgtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
)

func TestSchemasAreSeparate(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.URL(t), pgtest.URL(t)
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE x (v int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Exec(ctx, "INSERT INTO x VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Exec(ctx, "SELECT v FROM x"); err == nil {
		t.Fatal("schema b sees schema a's table")
	}
	var n int
	if err := ca.QueryRow(ctx, "SELECT count(*) FROM x").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

// A schema left behind by a process that died before its cleanup is dropped by a later run once it is stale; a
// fresh one, which may belong to a test running now, stays.
func TestStaleSchemasAreDropped(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.BaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	stale := fmt.Sprintf("t_%d_0123456789ab", time.Now().Add(-pgtest.StaleAfter-time.Minute).Unix())
	fresh := fmt.Sprintf("t_%d_ba9876543210", time.Now().Unix())
	for _, s := range []string{stale, fresh} {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+s); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+fresh+" CASCADE") // before the connection closes
	pgtest.URL(t)
	exists := func(name string) bool {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if exists(stale) {
		t.Errorf("stale schema %s was not dropped", stale)
	}
	if !exists(fresh) {
		t.Errorf("fresh schema %s was dropped", fresh)
	}
}
