package main

import (
	"bufio"
	"bytes"

	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/metricblock"
)

// object is one table or index and the bytes of its pages.
type object struct {
	name  string
	bytes int64
}

// dbstat returns the pages of tables (and of their indexes) in the SQLite file at path, from the dbstat virtual
// table of the sqlite3 command.
func dbstat(path string, tables []string) ([]object, error) {
	q := `SELECT d.name, sum(d.pgsize) FROM dbstat d JOIN sqlite_schema s ON s.name = d.name
		WHERE s.tbl_name IN ('` + strings.Join(tables, "','") + `') GROUP BY d.name ORDER BY d.name`
	out, err := exec.Command("sqlite3", "-readonly", path, q).Output()
	if err != nil {
		return nil, fmt.Errorf("dbstat of %s: %w", path, err)
	}
	var objs []object
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, size, ok := strings.Cut(sc.Text(), "|")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("dbstat of %s: %q: %w", path, sc.Text(), err)
		}
		objs = append(objs, object{name, n})
	}
	return objs, nil
}

func sqliteExec(path, stmt string) error {
	if out, err := exec.Command("sqlite3", path, stmt).CombinedOutput(); err != nil {
		return fmt.Errorf("sqlite3 %s %q: %w: %s", path, stmt, err, out)
	}
	return nil
}

func sortBatches(b []*lodestone.DeviceBatch) {
	slices.SortStableFunc(b, func(x, y *lodestone.DeviceBatch) int { return x.ReceivedAt.Compare(y.ReceivedAt) })
}

// fillFerrite fills ferrite's schema (ferritedb/testdata) with the points as ferrite stores them: the key as text,
// the value as JSON text, the time as 'YYYY-MM-DD HH:MM:SS'.
func fillFerrite(ctx context.Context, path string, batches []*lodestone.DeviceBatch) error {
	ddl, err := os.ReadFile("ferritedb/testdata/ferrite_schema.sql")
	if err != nil {
		return fmt.Errorf("ferrite schema (run from the repository root): %w", err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=NORMAL")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, string(ddl)); err != nil {
		return fmt.Errorf("ferrite schema: %w", err)
	}
	rowids := map[string]int64{}
	const perTx = 2000
	for lo := 0; lo < len(batches); lo += perTx {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, b := range batches[lo:min(lo+perTx, len(batches))] {
			id, ok := rowids[b.DeviceID]
			if !ok {
				res, err := tx.ExecContext(ctx, `INSERT INTO devices (device_id, firmware_version, build_id)
					VALUES (?, ?, ?)`, b.DeviceID, b.Info.FirmwareVersion, b.Info.BuildID)
				if err != nil {
					return fmt.Errorf("ferrite device: %w", err)
				}
				id, _ = res.LastInsertId()
				rowids[b.DeviceID] = id
			}
			at := b.ReceivedAt.UTC().Format("2006-01-02 15:04:05")
			for i := range b.Metrics {
				m := &b.Metrics[i]
				if _, err := tx.ExecContext(ctx, `INSERT INTO metrics (device_rowid, key, metric_type, value_json,
					timestamp_ticks, created_at) VALUES (?, ?, ?, ?, ?, ?)`, id, m.Key, uint8(m.Type), m.ValueJSON(),
					int64(m.Ticks), at); err != nil {
					return fmt.Errorf("ferrite metric: %w", err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// dialect is what differs between the SQLite and PostgreSQL forms of the block table.
type dialect struct {
	blocksDDL []string
	insert    string
	params    func(q string) string
}

var sqliteDialect = dialect{
	blocksDDL: []string{
		`DROP TRIGGER metrics_rollup_delete`, // sealing moves points, the 1-minute rollups stay as they are
		`CREATE TABLE metric_blocks (
			id        INTEGER PRIMARY KEY,
			device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
			key_id    INTEGER NOT NULL,
			first_at  INTEGER NOT NULL,
			last_at   INTEGER NOT NULL,
			n         INTEGER NOT NULL,
			data      BLOB NOT NULL)`,
		`CREATE INDEX metric_blocks_series ON metric_blocks (key_id, device_id, last_at)`,
		`CREATE INDEX metric_blocks_device ON metric_blocks (device_id, last_at)`,
		`CREATE INDEX metric_blocks_time ON metric_blocks (last_at)`,
	},
	insert: `INSERT INTO metric_blocks (device_id, key_id, first_at, last_at, n, data) VALUES (?, ?, ?, ?, ?, ?)`,
	params: func(q string) string { return q },
}

// timings, when set (-v), receives where a seal spent its time.
var timings func(string)

// seal moves the points older than cutoff from the metrics table into blocks of at most size points and about
// maxBytes bytes per series, in one transaction, and returns how many it moved.
func seal(ctx context.Context, db *sql.DB, d dialect, cutoff int64, size, maxBytes int) (int, error) {
	type series struct{ key, dev int64 }
	t0 := time.Now()
	rows, err := db.QueryContext(ctx, d.params(`SELECT key_id, device_id, id, received_at, ticks, type, value, max,
		raw FROM metrics WHERE received_at < ? ORDER BY key_id, device_id, received_at, id`), cutoff)
	if err != nil {
		return 0, fmt.Errorf("seal: read points: %w", err)
	}
	all := map[series][]metricblock.Point{}
	var order []series
	for rows.Next() {
		var s series
		var p metricblock.Point
		var value, maxV sql.NullFloat64
		if err := rows.Scan(&s.key, &s.dev, &p.ID, &p.At, &p.Ticks, &p.Type, &value, &maxV, &p.Raw); err != nil {
			rows.Close()
			return 0, fmt.Errorf("seal: read point: %w", err)
		}
		p.Value, p.Max = nullNaN(value), nullNaN(maxV)
		if _, ok := all[s]; !ok {
			order = append(order, s)
		}
		all[s] = append(all[s], p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	t1 := time.Now()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	for _, q := range d.blocksDDL {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("seal: %s: %w", q, err)
		}
	}
	ins, err := tx.PrepareContext(ctx, d.params(d.insert))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range order {
		pts := all[s]
		for lo := 0; lo < len(pts); {
			// A block ends at size points, or before its bytes would pass maxBytes, so that whole blocks share
			// pages without leaving a page's tail empty (a sample takes at most a few tens of bytes).
			enc := metricblock.NewEncoder()
			hi := lo
			for hi < len(pts) && hi-lo < size && enc.Len()+32 <= maxBytes {
				if err := enc.Add(&pts[hi]); err != nil {
					return 0, err
				}
				hi++
			}
			if _, err := ins.ExecContext(ctx, s.dev, s.key, pts[lo].At, pts[hi-1].At, hi-lo, enc.Bytes()); err != nil {
				return 0, fmt.Errorf("seal: insert block: %w", err)
			}
			n += hi - lo
			lo = hi
		}
	}
	t2 := time.Now()
	if _, err := tx.ExecContext(ctx, d.params(`DELETE FROM metrics WHERE received_at < ?`), cutoff); err != nil {
		return 0, fmt.Errorf("seal: delete sealed rows: %w", err)
	}
	t3 := time.Now()
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if timings != nil {
		timings(fmt.Sprintf("read and sort %s, encode and insert blocks %s, delete rows %s, commit %s",
			t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond),
			time.Since(t3).Round(time.Millisecond)))
	}
	return n, nil
}

func sealSQLite(ctx context.Context, path string, cutoff int64, size, maxBytes int) (int, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?_synchronous=NORMAL")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return seal(ctx, db, sqliteDialect, cutoff, size, maxBytes)
}

func nullNaN(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}
