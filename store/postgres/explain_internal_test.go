package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// TestExplainFleetQueries prints PostgreSQL's EXPLAIN of the series and device-list statements on a filled
// database (the one BenchmarkFleetPostgres fills when LODESTONE_BENCH_POSTGRES names it), and fails when one
// reads the whole metrics table:
//
//	LODESTONE_EXPLAIN_POSTGRES='postgres://…&search_path=bench' go test ./store/postgres/ -run TestExplain -v
func TestExplainFleetQueries(t *testing.T) {
	url := os.Getenv("LODESTONE_EXPLAIN_POSTGRES")
	if url == "" {
		t.Skip("LODESTONE_EXPLAIN_POSTGRES names no filled database")
	}
	ctx := context.Background()
	db, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var key, dev, group, end int64
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT id FROM metric_keys WHERE name = 'temp'),
		(SELECT id FROM devices WHERE device_id = 'dev-000003'), (SELECT max(id) FROM device_groups),
		(SELECT max(received_at) FROM metrics)`).Scan(&key, &dev, &group, &end); err != nil {
		t.Fatal(err)
	}
	to := time.UnixMilli(end + 1)
	day, month := 24*time.Hour, 30*24*time.Hour
	type stmt struct {
		name, sql string
		args      args
	}
	var stmts []stmt
	series := func(name string, q lodestone.SeriesQuery, rows ...int64) {
		q, err := q.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		s, a := seriesQuery(q, key, rows)
		stmts = append(stmts, stmt{name, s, a})
	}
	series("series: one device, 30 days", lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"d"},
		From: to.Add(-month), To: to}, dev)
	series("series: five devices, 1 day", lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"a", "b", "c", "d",
		"e"}, From: to.Add(-day), To: to}, dev, dev+1, dev+2, dev+3, dev+4)
	series("series: fleet, 1 day", lodestone.SeriesQuery{Key: "temp", Fleet: true, From: to.Add(-day), To: to})
	series("series: fleet, 30 days", lodestone.SeriesQuery{Key: "temp", Fleet: true, From: to.Add(-month), To: to})
	series("series: fleet in a group, 30 days", lodestone.SeriesQuery{Key: "temp", Fleet: true, GroupID: group,
		From: to.Add(-month), To: to})
	for _, f := range []lodestone.DeviceFilter{
		{}, {Offset: 99_950}, {Status: lodestone.StatusOnline}, {GroupID: group}, {Tag: "pilot"},
		{FirmwareVersion: "1.0.0"}, {Search: "dev-0123"}, {Sort: lodestone.SortDeviceID, Ascending: true},
		{Sort: lodestone.SortName, Ascending: true}, {Sort: lodestone.SortName},
		{Sort: lodestone.SortFirmware, Ascending: true},
	} {
		f.Limit = 50
		s, a, err := deviceListQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, stmt{fmt.Sprintf("devices: %+v", f), s, a})
	}
	for _, s := range stmts {
		rows, err := db.pool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) "+s.sql, s.args...)
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		var out []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, "  "+line)
			if strings.Contains(line, "Seq Scan on metrics") {
				t.Errorf("%s: %s", s.name, line)
			}
		}
		rows.Close()
		t.Logf("%s\n%s", s.name, strings.Join(out, "\n"))
	}
}
