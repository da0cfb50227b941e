package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/storetest"
)

func sealFleetStore(t *testing.T, url string) *postgres.DB {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSealingMigratesForward takes a database as it was before migration 00170, with its points as rows, and
// opens it: the migration applies, the rows read as before, and the compactor seals them with no read changing.
func TestSealingMigratesForward(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	db := sealFleetStore(t, url)
	if err := db.WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
		t.Fatal(err)
	}
	tags := "north"
	if _, err := db.UpdateDevice(ctx, "dev-1", lodestone.DeviceUpdate{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	want := storetest.SealReads(t, db)
	// 00170's down migration, as if this database had never seen it.
	if _, err := db.Pool().Exec(ctx, `DROP TABLE metric_blocks; DELETE FROM goose_db_version WHERE version_id = 170`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = sealFleetStore(t, url)
	storetest.CompareSealReads(t, "migrated", want, storetest.SealReads(t, db))
	if n, err := db.SealMetrics(ctx, time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)); err != nil || n == 0 {
		t.Fatalf("seal after migration: %d %v", n, err)
	}
	storetest.CompareSealReads(t, "migrated and sealed", want, storetest.SealReads(t, db))
}

// TestSealInSmallSteps seals with the series listed four at a time and transactions of 100 points: every point is
// sealed, and reads do not change.
func TestSealInSmallSteps(t *testing.T) {
	defer postgres.SetSealBatch(postgres.SetSealBatch(4, 100))
	ctx := context.Background()
	var dbs [2]*postgres.DB
	for i := range dbs {
		dbs[i] = sealFleetStore(t, pgtest.URL(t))
		if err := dbs[i].WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
			t.Fatal(err)
		}
	}
	n, err := dbs[1].SealMetrics(ctx, time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC))
	if err != nil || n != 3*180*3*5 {
		t.Fatalf("sealed %d points, %v; want %d", n, err, 3*180*3*5)
	}
	storetest.CompareSealReads(t, "sealed in small steps", storetest.SealReads(t, dbs[0]), storetest.SealReads(t, dbs[1]))
}
