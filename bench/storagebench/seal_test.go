package main

import (
	"context"
	"database/sql"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone/store/metricblock"
)

// TestSeal: sealing moves exactly the points older than the cutoff into blocks of at most the block size, one
// series per block, and the blocks give back every column of every moved row.
func TestSeal(t *testing.T) {
	ctx := context.Background()
	c := config{devices: 7, span: 3 * time.Hour, every: time.Minute}
	batches, points := fleet(c)
	path := filepath.Join(t.TempDir(), "l.db")
	if err := fillSQLite(ctx, path, batches); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	type row struct {
		key, dev int64
		p        metricblock.Point
	}
	before := map[int64]row{}
	rows, err := db.Query(`SELECT key_id, device_id, id, received_at, ticks, type, value, max, raw FROM metrics`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r row
		var v, m sql.NullFloat64
		if err := rows.Scan(&r.key, &r.dev, &r.p.ID, &r.p.At, &r.p.Ticks, &r.p.Type, &v, &m, &r.p.Raw); err != nil {
			t.Fatal(err)
		}
		r.p.Value, r.p.Max = nullNaN(v), nullNaN(m)
		before[r.p.ID] = r
	}
	rows.Close()
	if len(before) != points {
		t.Fatalf("%d rows written, want %d", len(before), points)
	}
	cutoff := batches[len(batches)/2].ReceivedAt.UnixMilli()
	moved, err := seal(ctx, db, sqliteDialect, cutoff, 50, 200)
	if err != nil {
		t.Fatal(err)
	}
	var left, leftOld int
	if err := db.QueryRow(`SELECT count(*), count(CASE WHEN received_at < ? THEN 1 END) FROM metrics`,
		cutoff).Scan(&left, &leftOld); err != nil {
		t.Fatal(err)
	}
	if leftOld != 0 || moved+left != points || moved == 0 || left == 0 {
		t.Fatalf("moved %d, left %d (%d older than the cutoff), of %d", moved, left, leftOld, points)
	}
	seen := 0
	blocks, err := db.Query(`SELECT key_id, device_id, first_at, last_at, n, data FROM metric_blocks`)
	if err != nil {
		t.Fatal(err)
	}
	defer blocks.Close()
	for blocks.Next() {
		var key, dev, first, last int64
		var n int
		var data []byte
		if err := blocks.Scan(&key, &dev, &first, &last, &n, &data); err != nil {
			t.Fatal(err)
		}
		pts, err := metricblock.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != n || n > 50 || len(data) > 200 || pts[0].At != first || pts[n-1].At != last {
			t.Fatalf("block of %d points (column n %d), %d..%d (columns %d..%d)", len(pts), n, pts[0].At,
				pts[n-1].At, first, last)
		}
		for _, p := range pts {
			want, ok := before[p.ID]
			if !ok || want.key != key || want.dev != dev || p.At >= cutoff || p.At != want.p.At ||
				p.Ticks != want.p.Ticks || p.Type != want.p.Type || !sameFloat(p.Value, want.p.Value) ||
				(p.Type == 2 && !sameFloat(p.Max, want.p.Max)) {
				t.Fatalf("block point %+v, row %+v", p, want)
			}
			delete(before, p.ID)
			seen++
		}
	}
	if seen != moved {
		t.Fatalf("blocks hold %d points, seal reported %d", seen, moved)
	}
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
