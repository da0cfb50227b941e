package postgres_test

import (
	"context"
	"testing"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/storetest"
)

// MustOpenDB opens a store in a fresh schema of the test server and closes it when the test ends.
func MustOpenDB(tb testing.TB) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), pgtest.URL(tb), postgres.Options{})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) lodestone.Store { return MustOpenDB(tb) })
}

// Metric key and log source names come from clients: unique ones keep the id caches within their bound.
func TestIDCachesBounded(t *testing.T) {
	defer func(n int) { postgres.KeyCacheSize = n }(postgres.KeyCacheSize)
	postgres.KeyCacheSize = 1000 // the real bound is 65,536; ten times the bound keeps the test quick
	db := MustOpenDB(t)
	storetest.CacheBound(t, db, 10_000, postgres.KeyCacheSize, db.CacheLens)
}
