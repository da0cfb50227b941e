package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// Retention empties the logs table, the server restarts, and the next record still gets an id past every id
// handed out before: the floor is kept in the database, not only in memory.
func TestLogIDsNeverReusedAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.db")
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	rec := func(body string) *lodestone.LogRecord {
		return &lodestone.LogRecord{Project: "p", DeviceID: "d", Time: t0, ObservedTime: t0, Severity: 9,
			Body: body, Attributes: "{}", ReceivedAt: t0}
	}
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := []*lodestone.LogRecord{rec(`"a"`), rec(`"b"`), rec(`"c"`)}
	if err := db.WriteLogs(ctx, first); err != nil {
		t.Fatal(err)
	}
	if n, err := db.DeleteLogsBefore(ctx, t0.Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("retention: %d %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	next := []*lodestone.LogRecord{rec(`"d"`)}
	if err := db.WriteLogs(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next[0].ID <= first[2].ID {
		t.Fatalf("id %d after a restart, but %d was handed out before", next[0].ID, first[2].ID)
	}
	if id, err := db.LastLogID(ctx); err != nil || id != next[0].ID {
		t.Fatalf("LastLogID %d %v, want %d", id, err, next[0].ID)
	}
}
