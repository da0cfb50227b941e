package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// TestRollupsFollowDeletes: the 1-minute rollups go with their last sample, turn stale when some of theirs are
// deleted, are recomputed by the next fleet read, and retention leaves none behind.
func TestRollupsFollowDeletes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "r.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g := func(v float64) []lodestone.Metric {
		return []lodestone.Metric{{Key: "k", Type: lodestone.MetricGauge, Value: v}}
	}
	// Rollup 12:00 holds a and b, rollup 12:06 only b.
	if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{
		{DeviceID: "a", ReceivedAt: t0, Metrics: g(1)},
		{DeviceID: "b", ReceivedAt: t0.Add(30 * time.Second), Metrics: g(10)},
		{DeviceID: "b", ReceivedAt: t0.Add(6 * time.Minute), Metrics: g(20)},
	}); err != nil {
		t.Fatal(err)
	}
	rollups := func() (n, dirty int) {
		t.Helper()
		if err := db.r.QueryRow(`SELECT count(*), coalesce(sum(dirty), 0) FROM metric_rollups`).Scan(&n,
			&dirty); err != nil {
			t.Fatal(err)
		}
		return n, dirty
	}
	if n, d := rollups(); n != 2 || d != 0 {
		t.Fatalf("after writes: %d rollups, %d dirty", n, d)
	}
	if err := db.DeleteDevice(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if n, d := rollups(); n != 1 || d != 1 {
		t.Fatalf("after deleting b: %d rollups, %d dirty", n, d)
	}
	got, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "k", Fleet: true, From: t0, To: t0.Add(time.Hour),
		Step: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if bs := got[0].Buckets; len(bs) != 1 || bs[0].Count != 1 || bs[0].Max != 1 || bs[0].Last != 1 {
		t.Fatalf("fleet after the delete: %+v", bs)
	}
	var total float64
	if err := db.r.QueryRow(`SELECT total FROM metric_rollups WHERE dirty = 0`).Scan(&total); err != nil ||
		total != 1 {
		t.Fatalf("recomputed rollup: total %v, %v", total, err)
	}
	if n, d := rollups(); n != 1 || d != 0 {
		t.Fatalf("after the read: %d rollups, %d dirty", n, d)
	}
	if _, err := db.PurgeBefore(ctx, t0.Add(time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := rollups(); n != 0 {
		t.Fatalf("after retention: %d rollups", n)
	}
}
