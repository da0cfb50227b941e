package driverbench

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// schema mirrors store/sqlite's tables on the hot path.
const schema = `
CREATE TABLE devices (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL UNIQUE, firmware_version TEXT NOT NULL DEFAULT '',
  build_id INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'unknown', first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL);
CREATE INDEX devices_last_seen ON devices (last_seen);
CREATE TABLE metric_keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE metrics (id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  key_id INTEGER NOT NULL REFERENCES metric_keys (id), type INTEGER NOT NULL, value REAL, max REAL, raw BLOB,
  ticks INTEGER NOT NULL, received_at INTEGER NOT NULL);
CREATE INDEX metrics_device_time ON metrics (device_id, received_at);
CREATE INDEX metrics_time ON metrics (received_at);
CREATE TABLE heartbeats (id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  uptime_ticks INTEGER NOT NULL, received_at INTEGER NOT NULL);
CREATE INDEX heartbeats_device_time ON heartbeats (device_id, received_at);
INSERT INTO metric_keys (name) VALUES ('k0'),('k1'),('k2'),('k3'),('k4'),('k5');
`

func open(b *testing.B) *sql.DB {
	b.Helper()
	db, err := sql.Open(driverName, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	for _, p := range []string{"PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL",
		"PRAGMA foreign_keys = ON"} {
		if _, err := db.Exec(p); err != nil {
			b.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := db.Exec(schema); err != nil {
		b.Fatal(err)
	}
	return db
}

const rowsPerInsert = 64

func multi(table, cols string, n, width int) string {
	row := "(" + strings.Repeat("?,", width-1) + "?)"
	return "INSERT INTO " + table + " (" + cols + ") VALUES " + strings.Repeat(row+",", n-1) + row
}

// writeSessions writes n device sessions in one transaction the way store/sqlite does: a device upsert with
// RETURNING, six metric rows and a heartbeat, rows batched into multi-row INSERTs.
func writeSessions(ctx context.Context, db *sql.DB, up, metrics, hbs *sql.Stmt, n, round int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UnixMilli()
	var mrows, hrows []any
	for i := range n {
		var dev int64
		if err := tx.Stmt(up).QueryRowContext(ctx, fmt.Sprintf("dev-%04d", (round*n+i)%1000), "1.4.2", 7, now).
			Scan(&dev); err != nil {
			return err
		}
		for k := range 6 {
			mrows = append(mrows, dev, k+1, 1, float64(k), nil, nil, int64(k), now)
		}
		hrows = append(hrows, dev, int64(i), now)
	}
	for len(mrows) >= rowsPerInsert*8 {
		if _, err := tx.Stmt(metrics).ExecContext(ctx, mrows[:rowsPerInsert*8]...); err != nil {
			return err
		}
		mrows = mrows[rowsPerInsert*8:]
	}
	for len(hrows) >= rowsPerInsert*3 {
		if _, err := tx.Stmt(hbs).ExecContext(ctx, hrows[:rowsPerInsert*3]...); err != nil {
			return err
		}
		hrows = hrows[rowsPerInsert*3:]
	}
	return tx.Commit()
}

func prepare(b *testing.B, db *sql.DB) (up, metrics, hbs *sql.Stmt) {
	b.Helper()
	var err error
	if up, err = db.Prepare(`INSERT INTO devices (device_id, firmware_version, build_id, status, first_seen, last_seen)
		VALUES (?1, ?2, ?3, 'online', ?4, ?4) ON CONFLICT (device_id) DO UPDATE SET
		firmware_version = excluded.firmware_version, build_id = excluded.build_id, status = 'online',
		last_seen = max(last_seen, excluded.last_seen) RETURNING id`); err != nil {
		b.Fatal(err)
	}
	if metrics, err = db.Prepare(multi("metrics", "device_id, key_id, type, value, max, raw, ticks, received_at",
		rowsPerInsert, 8)); err != nil {
		b.Fatal(err)
	}
	if hbs, err = db.Prepare(multi("heartbeats", "device_id, uptime_ticks, received_at", rowsPerInsert, 3)); err != nil {
		b.Fatal(err)
	}
	return up, metrics, hbs
}

// BenchmarkWrite512Sessions: one transaction of 512 sessions (4096 metric and heartbeat rows) per op.
func BenchmarkWrite512Sessions(b *testing.B) {
	b.Log(label)
	db := open(b)
	up, metrics, hbs := prepare(b, db)
	ctx := context.Background()
	round := 0
	for b.Loop() {
		if err := writeSessions(ctx, db, up, metrics, hbs, 512, round); err != nil {
			b.Fatal(err)
		}
		round++
	}
	b.ReportMetric(float64(512*b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkQueryDeviceMetrics: the newest 100 samples of one device out of 200k, as GET /devices/{id}/metrics.
func BenchmarkQueryDeviceMetrics(b *testing.B) {
	db := open(b)
	up, metrics, hbs := prepare(b, db)
	ctx := context.Background()
	for round := range 65 {
		if err := writeSessions(ctx, db, up, metrics, hbs, 512, round); err != nil {
			b.Fatal(err)
		}
	}
	q, err := db.Prepare(`SELECT m.id, m.type, m.value, m.ticks, m.received_at, k.name FROM metrics m
		JOIN metric_keys k ON k.id = m.key_id WHERE m.device_id = ? ORDER BY m.received_at DESC, m.id DESC LIMIT 100`)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		rows, err := q.QueryContext(ctx, 1+i%1000)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id, typ, ticks, at int64
			var v float64
			var name string
			if err := rows.Scan(&id, &typ, &v, &ticks, &at, &name); err != nil {
				b.Fatal(err)
			}
			n++
		}
		rows.Close()
		if n != 100 {
			b.Fatalf("%d rows", n)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
