package schema_test

import (
	"testing"

	"github.com/lodestone-fleet/lodestone/store/schema"
)

func TestRebind(t *testing.T) {
	q := `SELECT a FROM t WHERE b = ? AND c IN (?, ?)`
	if got := schema.Rebind(schema.SQLite, q); got != q {
		t.Fatalf("sqlite: %q", got)
	}
	if got := schema.Rebind(schema.Postgres, q); got != `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)` {
		t.Fatalf("postgres: %q", got)
	}
}
