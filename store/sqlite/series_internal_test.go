package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/storetest"
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

// TestFleetRollupReadsAgree: a fleet series reads its rollups one by one in Go over short ranges and sums them in
// SQL over long ones; both give the same buckets, stale rollups (a deleted device) included.
func TestFleetRollupReadsAgree(t *testing.T) {
	ctx := context.Background()
	defer func(n int64) { rollupsInGo = n }(rollupsInGo)
	open := func(name string) *DB {
		db, err := Open(ctx, filepath.Join(t.TempDir(), name), Options{Synchronous: "OFF"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteDevice(ctx, "dev-1"); err != nil { // some rollups turn stale
			t.Fatal(err)
		}
		return db
	}
	inGo, inSQL := open("go.db"), open("sql.db")
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, key := range []string{"temp", "lat", "uptime", "rssi"} {
		for _, q := range []lodestone.SeriesQuery{
			{From: base, To: base.Add(3 * time.Hour)},
			{From: base.Add(7*time.Minute + 13*time.Second), To: base.Add(171*time.Minute + 5*time.Second),
				Step: 10 * time.Minute},
			{From: base.Add(-time.Hour), To: base.Add(2 * time.Hour), Step: 3 * time.Minute},
		} {
			q.Key, q.Fleet = key, true
			rollupsInGo = 1 << 40
			a, err := inGo.MetricSeries(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			rollupsInGo = -1
			b, err := inSQL.MetricSeries(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if fa, fb := fmt.Sprintf("%+v", *a[0]), fmt.Sprintf("%+v", *b[0]); fa != fb || len(a[0].Buckets) == 0 {
				t.Fatalf("%s %v..%v: read in Go\n %s\nsummed in SQL\n %s", key, q.From, q.To, fa, fb)
			}
		}
	}
}
