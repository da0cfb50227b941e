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

	"github.com/lodestone-fleet/lodestone"
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

func nullNaN(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}
