package sqlite_test

import (
	"context"
	"database/sql"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/store/storetest"
)

var dump = flag.Bool("dump", false, "keep database files and print their paths")

// MustOpenDB opens a fresh database file in a temporary directory and closes it when the test ends.
func MustOpenDB(tb testing.TB) *sqlite.DB {
	tb.Helper()
	return MustOpenDBWith(tb, "")
}

// MustOpenDBWith is MustOpenDB with a synchronous mode.
func MustOpenDBWith(tb testing.TB, sync string) *sqlite.DB {
	tb.Helper()
	dir := tb.TempDir()
	if *dump {
		dir = filepath.Join("/tmp", "lodestone-dump", filepath.Base(tb.Name()))
		tb.Logf("database: %s", dir)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "lodestone.db"), sqlite.Options{Synchronous: sync})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) lodestone.Store { return MustOpenDB(tb) })
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "d", ReceivedAt: now,
		Metrics: []lodestone.Metric{{Key: "k", Type: lodestone.MetricGauge, Value: 1.5}}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	st, err := db.MigrationStatus(ctx)
	if err != nil || st.Current != st.Latest || st.Current < 1 || len(st.Pending) != 0 {
		t.Fatalf("migration status %+v %v", st, err)
	}
	// The metric key cache starts empty after a reopen; the dictionary row must be found, not duplicated.
	if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "d", ReceivedAt: now,
		Metrics: []lodestone.Metric{{Key: "k", Type: lodestone.MetricGauge, Value: 2.5}}}}); err != nil {
		t.Fatal(err)
	}
	ms, err := db.FindMetrics(ctx, lodestone.MetricFilter{Key: "k"})
	if err != nil || len(ms) != 2 || !ms[0].ReceivedAt.Equal(now) {
		t.Fatalf("metrics after reopen: %v %v", ms, err)
	}
}

func TestOpenRefusesFerriteDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferrite.db")
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	// The heart of ferrite-server's schema.
	if _, err := raw.Exec(`CREATE TABLE devices (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL UNIQUE);
		CREATE TABLE fault_events (id INTEGER PRIMARY KEY, device_rowid INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = sqlite.Open(context.Background(), path, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "ferrite-server database") {
		t.Fatalf("opening a ferrite database: %v", err)
	}
}

// Metric key and log source names come from clients: unique ones keep the id caches within their bound.
func TestIDCachesBounded(t *testing.T) {
	defer func(n int) { sqlite.KeyCacheSize = n }(sqlite.KeyCacheSize)
	sqlite.KeyCacheSize = 1000 // the real bound is 65,536; ten times the bound keeps the test quick
	db := MustOpenDB(t)
	storetest.CacheBound(t, db, 10_000, sqlite.KeyCacheSize, db.CacheLens)
}
