package retention_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/retention"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

type store interface {
	lodestone.Store
	lodestone.RetentionStore
}

func TestPurgeSQLite(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testPurge(t, db)
}

func TestPurgePostgres(t *testing.T) {
	db, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testPurge(t, db)
}

func testPurge(t *testing.T, db store) {
	ctx := context.Background()
	now := time.Now()
	old, fresh := now.Add(-31*24*time.Hour), now.Add(-29*24*time.Hour)
	var batches []*lodestone.DeviceBatch
	for i := range 30 {
		at := old
		if i%3 == 0 {
			at = fresh
		}
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at.Add(time.Duration(i) * time.Millisecond),
			Metrics:    []lodestone.Metric{{Key: "k", Value: float64(i)}},
			Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(i)}},
			Faults:     []lodestone.Fault{{FaultType: 1}}})
	}
	if err := db.WriteTelemetry(ctx, batches); err != nil {
		t.Fatal(err)
	}
	off := retention.New(db, 0, 0, nil)
	if _, err := off.Purge(ctx); lodestone.ErrorCode(err) != lodestone.ECONFLICT {
		t.Fatalf("disabled retention purged: %v", err)
	}
	svc := retention.New(db, 30, 7, nil) // batches of 7: several transactions per table
	r, err := svc.Purge(ctx)
	if err != nil || r.Deleted["metrics"] != 20 || r.Deleted["heartbeats"] != 20 || r.Deleted["faults"] != 20 {
		t.Fatalf("purge = %+v, %v", r, err)
	}
	m, _ := db.FindMetrics(ctx, lodestone.MetricFilter{})
	hb, _ := db.FindHeartbeats(ctx, lodestone.TelemetryFilter{})
	if len(m) != 10 || len(hb) != 10 {
		t.Fatalf("kept %d metrics, %d heartbeats; want 10 each", len(m), len(hb))
	}
	for _, x := range m {
		if x.ReceivedAt.Before(r.Cutoff) {
			t.Fatalf("kept a metric from %v, before the cutoff %v", x.ReceivedAt, r.Cutoff)
		}
	}
	last, err := svc.LastRun(ctx)
	if err != nil || last.Cutoff.Sub(r.Cutoff).Abs() > time.Millisecond || last.Deleted["metrics"] != 20 {
		t.Fatalf("last run %+v, %v", last, err)
	}
	// The device itself is kept.
	if _, err := db.FindDeviceByID(ctx, "d"); err != nil {
		t.Fatal(err)
	}
}
