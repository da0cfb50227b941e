package sqlite_test

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
	"github.com/lodestone-fleet/lodestone/store/storetest"
)

func openTwin(t *testing.T, name string) *sqlite.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), name), sqlite.Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
		t.Fatal(err)
	}
	tags := "north"
	if _, err := db.UpdateDevice(ctx, "dev-1", lodestone.DeviceUpdate{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestSealingMigratesForward takes a database as it was before migration 00170, with its points as rows, and
// opens it: the migration applies, the rows read as before, and the compactor seals them with no read changing.
func TestSealingMigratesForward(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	// 00170's down migration, as if this database had never seen it.
	if _, err := raw.Exec(`DROP TRIGGER metric_blocks_rollup_delete; DROP TRIGGER metrics_rollup_delete;
		CREATE TRIGGER metrics_rollup_delete AFTER DELETE ON metrics WHEN OLD.type IN (0, 1, 2)
		BEGIN
			UPDATE metric_rollups SET n = n - 1, dirty = 1
			WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000;
			DELETE FROM metric_rollups
			WHERE key_id = OLD.key_id AND bucket = OLD.received_at - OLD.received_at % 60000 AND n <= 0;
		END;
		DROP TABLE metric_blocks; DELETE FROM goose_db_version WHERE version_id = 170`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("migrate forward: %v", err)
	}
	defer db.Close()
	tags := "north"
	if _, err := db.UpdateDevice(ctx, "dev-1", lodestone.DeviceUpdate{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	twin := openTwin(t, "twin.db")
	want := storetest.SealReads(t, twin)
	storetest.CompareSealReads(t, "migrated", want, storetest.SealReads(t, db))
	if n, err := db.SealMetrics(ctx, time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)); err != nil || n == 0 {
		t.Fatalf("seal after migration: %d %v", n, err)
	}
	storetest.CompareSealReads(t, "migrated and sealed", want, storetest.SealReads(t, db))
}

// BenchmarkSealedReads compares read routes over the same points as rows and as sealed blocks.
func BenchmarkSealedReads(b *testing.B) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	open := func(name string, seal bool) *sqlite.DB {
		db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), name), sqlite.Options{Synchronous: "OFF"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		if err := db.WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
			b.Fatal(err)
		}
		if seal {
			if _, err := db.SealMetrics(ctx, base.Add(150*time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		return db
	}
	dbs := map[string]*sqlite.DB{"rows": open("rows.db", false), "sealed": open("sealed.db", true)}
	routes := map[string]func(db *sqlite.DB) error{
		"FindMetrics": func(db *sqlite.DB) error {
			_, err := db.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{Limit: 100}})
			return err
		},
		"FindMetricsDeviceOld": func(db *sqlite.DB) error {
			_, err := db.FindMetrics(ctx, lodestone.MetricFilter{Key: "temp", TelemetryFilter: lodestone.TelemetryFilter{
				DeviceID: "dev-1", Until: base.Add(time.Hour), Limit: 100}})
			return err
		},
		"DeviceSeries": func(db *sqlite.DB) error {
			_, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"dev-0", "dev-1"},
				From: base, To: base.Add(3 * time.Hour), Step: 5 * time.Minute})
			return err
		},
		"FleetSeries": func(db *sqlite.DB) error {
			_, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "temp", Fleet: true,
				From: base.Add(7*time.Second + 7*time.Minute), To: base.Add(3 * time.Hour)})
			return err
		},
	}
	for route, fn := range routes {
		for _, kind := range []string{"rows", "sealed"} {
			b.Run(route+"/"+kind, func(b *testing.B) {
				for b.Loop() {
					if err := fn(dbs[kind]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestBackupKeepsSealedPoints backs up a database whose points are partly sealed: the restored file answers
// every read of points as the original does.
func TestBackupKeepsSealedPoints(t *testing.T) {
	ctx := context.Background()
	db := openTwin(t, "live.db")
	if n, err := db.SealMetrics(ctx, time.Date(2026, 3, 1, 1, 30, 0, 0, time.UTC)); err != nil || n == 0 {
		t.Fatalf("seal: %d %v", n, err)
	}
	want := storetest.SealReads(t, db)
	snap, err := db.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, snap); err != nil || f.Close() != nil || snap.Close() != nil {
		t.Fatalf("copy snapshot: %v", err)
	}
	restored, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	storetest.CompareSealReads(t, "restored", want, storetest.SealReads(t, restored))
}

// TestSealerRunsInBackground opens a store with the compactor on: points older than SealAfter become blocks
// without a call, reads stay the same, and Close stops the compactor.
func TestSealerRunsInBackground(t *testing.T) {
	defer sqlite.SetSealEvery(sqlite.SetSealEvery(20 * time.Millisecond))
	ctx := context.Background()
	twin := openTwin(t, "rows.db")
	want := storetest.SealReads(t, twin)
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bg.db"), sqlite.Options{SealAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.WriteTelemetry(ctx, storetest.SealFleet()); err != nil {
		t.Fatal(err)
	}
	tags := "north"
	if _, err := db.UpdateDevice(ctx, "dev-1", lodestone.DeviceUpdate{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the compactor to seal every point", func() bool {
		var rows int
		err := db.ReadDB().QueryRow(`SELECT count(*) FROM metrics`).Scan(&rows)
		return err == nil && rows == 1 // the newest row stays, so its id is never handed out again
	})
	storetest.CompareSealReads(t, "sealed in the background", want, storetest.SealReads(t, db))
}

// TestSealInSmallSteps seals with the devices listed one at a time and transactions of 100 points: every point but
// the table's newest row is sealed (that row keeps new ids above the sealed ones), and reads do not change.
func TestSealInSmallSteps(t *testing.T) {
	defer sqlite.SetSealBatch(sqlite.SetSealBatch(1, 100))
	ctx := context.Background()
	rows, db := openTwin(t, "rows.db"), openTwin(t, "small.db")
	n, err := db.SealMetrics(ctx, time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC))
	if err != nil || n != 3*180*3*5-1 {
		t.Fatalf("sealed %d points, %v; want %d", n, err, 3*180*3*5-1)
	}
	var left, top int64
	if err := db.ReadDB().QueryRow(`SELECT count(*), max(id) FROM metrics`).Scan(&left, &top); err != nil ||
		left != 1 || top != 3*180*3*5 {
		t.Fatalf("rows left: %d, newest id %d, %v; want the newest row, id %d", left, top, err, 3*180*3*5)
	}
	storetest.CompareSealReads(t, "sealed in small steps", storetest.SealReads(t, rows), storetest.SealReads(t, db))
}
