package ferritedb_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/lodestone-fleet/lodestone/ferritedb"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// BenchmarkImport imports a ferrite database of 100 devices and 200,000 metrics, 20,000 faults and 20,000 reboots
// into a fresh SQLite store per iteration, and reports rows per second.
func BenchmarkImport(b *testing.B) {
	ddl, err := os.ReadFile("testdata/ferrite_schema.sql")
	if err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(b.TempDir(), "ferrite.db")
	db, err := sql.Open("sqlite3", src)
	if err != nil {
		b.Fatal(err)
	}
	const rows = `
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
	INSERT INTO devices (device_id, firmware_version) SELECT 'dev-' || i, '1.0' FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
	INSERT INTO metrics (device_rowid, key, metric_type, value_json, timestamp_ticks, created_at)
		SELECT 1 + i % 100, 'temp', 1, '{"gauge":' || (i % 50) || '.5}', i,
		       datetime(1767225600 + i / 10, 'unixepoch') FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
	INSERT INTO fault_events (device_rowid, fault_type, pc, lr, cfsr, hfsr, mmfar, bfar, sp, stack_snapshot, created_at)
		SELECT 1 + i % 100, 0, 134225920, 0, 0, 0, 0, 0, 0, '[1,2,3]', datetime(1767225600 + i, 'unixepoch') FROM n;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
	INSERT INTO reboot_events (device_rowid, reason, created_at)
		SELECT 1 + i % 100, 3, datetime(1767225600 + i, 'unixepoch') FROM n;`
	if _, err := db.Exec(string(ddl) + rows); err != nil {
		b.Fatal(err)
	}
	db.Close()
	total := 100 + 200000 + 20000 + 20000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "l.db"),
			sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := ferritedb.Import(context.Background(), openSource(b, src), dst, ferritedb.Options{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "rows/s")
}
