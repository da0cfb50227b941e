// Package pgtest gives each test its own PostgreSQL schema on the server named by LODESTONE_TEST_POSTGRES, so test
// runs, and tests within a run, never see each other's rows.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the variable that holds the test server's URL; .ci/run sets it.
const EnvVar = "LODESTONE_TEST_POSTGRES"

// BaseURL returns the test server's URL, skipping the test when none is configured.
func BaseURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvVar)
	if u == "" {
		if os.Getenv("LODESTONE_REQUIRE_POSTGRES") != "" {
			tb.Fatalf("%s is not set, and LODESTONE_REQUIRE_POSTGRES says PostgreSQL tests must run", EnvVar)
		}
		tb.Skipf("%s is not set; skipping a PostgreSQL test", EnvVar)
	}
	return u
}

// URL creates a fresh schema, drops it when the test ends, and returns a connection URL whose search_path points
// at it: everything opened from that URL creates and finds its tables there.
func URL(tb testing.TB) string {
	tb.Helper()
	base := BaseURL(tb)
	var b [6]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("t_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("pgtest: connect %s: %v", base, err)
	}
	defer conn.Close(ctx)
	dropStale(ctx, tb, conn, time.Now().Add(-StaleAfter))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("pgtest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Logf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Logf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return WithSchema(tb, base, schema)
}

// WithSchema returns base with its search_path set to schema.
func WithSchema(tb testing.TB, base, schema string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("pgtest: parse %s: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// StaleAfter is the age past which a test schema is taken as left behind: a process killed before its cleanup ran
// (a fuzzing worker, which the fuzzing engine stops without running cleanups, or a test binary that timed out).
// No test runs that long.
const StaleAfter = 6 * time.Hour

// dropStale drops the test schemas created before cutoff, so leftovers do not pile up run after run.
func dropStale(ctx context.Context, tb testing.TB, conn *pgx.Conn, cutoff time.Time) {
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[0-9a-f]+$'`)
	if err != nil {
		tb.Logf("pgtest: list schemas: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Logf("pgtest: list schemas: %v", err)
		return
	}
	for _, name := range names {
		var created int64
		if _, err := fmt.Sscanf(name, "t_%d_", &created); err != nil || time.Unix(created, 0).After(cutoff) {
			continue
		}
		// Another test's cleanup may drop it at the same moment: IF EXISTS, and a failure is only logged.
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Logf("pgtest: drop stale schema %s: %v", name, err)
		}
	}
}
