package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// TestReadStmtsBounded: past its bound the cache answers with one-off queries, and every answer is right.
func TestReadStmtsBounded(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for round := range 2 {
		for i := range stmtCacheSize + 10 {
			rows, err := db.rq.QueryContext(ctx, fmt.Sprintf("SELECT ? + %d", i), round)
			if err != nil {
				t.Fatal(err)
			}
			var got int
			for rows.Next() {
				if err := rows.Scan(&got); err != nil {
					t.Fatal(err)
				}
			}
			rows.Close()
			if got != i+round {
				t.Fatalf("query %d round %d: got %d", i, round, got)
			}
		}
	}
	if n := len(db.rq.m); n != stmtCacheSize {
		t.Fatalf("cached %d statements, want %d", n, stmtCacheSize)
	}
}

// TestReadOnlySeries: a database opened read-only (lodestone report, explain tests) answers series like the
// writable store, through the same cached statements.
func TestReadOnlySeries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	var batch []*lodestone.DeviceBatch
	for i := range 90 {
		batch = append(batch, &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("d%d", i%3),
			ReceivedAt: base.Add(time.Duration(i) * 37 * time.Second),
			Metrics:    []lodestone.Metric{{Key: "k", Type: lodestone.MetricGauge, Value: float64(i)}}})
	}
	if err := db.WriteTelemetry(ctx, batch); err != nil {
		t.Fatal(err)
	}
	q := lodestone.SeriesQuery{Key: "k", Fleet: true, From: base.Add(17 * time.Second), To: base.Add(time.Hour)}
	want, err := db.MetricSeries(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for range 2 { // the second answer comes from the cached statements
		got, err := ro.MetricSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || len(want) != 1 || fmt.Sprint(got[0].Buckets) != fmt.Sprint(want[0].Buckets) {
			t.Fatalf("read-only series %v, want %v", got, want)
		}
		if len(got[0].Buckets) == 0 {
			t.Fatal("empty series")
		}
	}
}
