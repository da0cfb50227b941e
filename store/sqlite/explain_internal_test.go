package sqlite

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// TestExplainFleetQueries prints SQLite's EXPLAIN QUERY PLAN of the series and device-list statements on a
// filled database (the file BenchmarkFleetSQLite caches), and fails when one reads a whole table or sorts one:
//
//	LODESTONE_EXPLAIN_SQLITE=~/.cache/lodestone-bench/fleet-….db go test ./store/sqlite/ -run TestExplain -v
func TestExplainFleetQueries(t *testing.T) {
	path := os.Getenv("LODESTONE_EXPLAIN_SQLITE")
	if path == "" {
		t.Skip("LODESTONE_EXPLAIN_SQLITE names no filled database")
	}
	ctx := context.Background()
	db, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var key, dev, group int64
	var end int64
	if err := db.r.QueryRow(`SELECT (SELECT id FROM metric_keys WHERE name = 'temp'),
		(SELECT id FROM devices WHERE device_id = 'dev-000003'), (SELECT max(id) FROM device_groups),
		(SELECT max(received_at) FROM metrics)`).Scan(&key, &dev, &group, &end); err != nil {
		t.Fatal(err)
	}
	to := time.UnixMilli(end + 1)
	plan := func(q lodestone.SeriesQuery, rows ...int64) *seriesPlan {
		q, err := q.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		p := &seriesPlan{q: q, key: key, rows: rows, step: q.Step.Milliseconds()}
		p.origin = ms(q.From) / p.step * p.step
		return p
	}
	day, month := 24*time.Hour, 30*24*time.Hour
	type stmt struct {
		name, sql string
		args      []any
	}
	var stmts []stmt
	raw := func(name string, p *seriesPlan) {
		s, a := seriesRawQuery(p, ms(p.q.From), ms(p.q.To))
		stmts = append(stmts, stmt{name, s, a})
	}
	raw("series: one device, 30 days", plan(lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"d"},
		From: to.Add(-month), To: to}, dev))
	raw("series: five devices, 1 day", plan(lodestone.SeriesQuery{Key: "temp", DeviceIDs: []string{"a", "b", "c",
		"d", "e"}, From: to.Add(-day), To: to}, dev, dev+1, dev+2, dev+3, dev+4))
	// A fleet series reads samples only for the part minutes at its ends (the rollups hold the rest).
	ends := plan(lodestone.SeriesQuery{Key: "temp", Fleet: true, From: to.Add(-day), To: to})
	s, a := seriesRawQuery(ends, ms(to)-ms(to)%rollupMS, ms(to))
	stmts = append(stmts, stmt{"series: fleet, the part minute at the end (samples)", s, a})
	raw("series: fleet in a group, 30 days", plan(lodestone.SeriesQuery{Key: "temp", Fleet: true, GroupID: group,
		From: to.Add(-month), To: to}))
	raw("series: fleet with a tag, 30 days", plan(lodestone.SeriesQuery{Key: "temp", Fleet: true, Tag: "pilot",
		From: to.Add(-month), To: to}))
	month30 := plan(lodestone.SeriesQuery{Key: "temp", Fleet: true, From: to.Add(-month), To: to})
	stmts = append(stmts, stmt{"series: fleet, 30 days (rollups)", rollupQuery,
		[]any{key, rollupMS, month30.origin, month30.step, ms(to.Add(-month)), ms(to)}},
		stmt{"series: fleet, 30 days (stale rollups)", dirtyQuery, []any{key, ms(to.Add(-month)), ms(to)}})
	// What a fleet read recomputes after a delete: the minutes' samples by time.
	stmts = append(stmts, stmt{"series: recompute rollups", refreshRollupsQuery,
		[]any{rollupMS, key, ms(to.Add(-time.Hour)), ms(to)}})
	for _, f := range []lodestone.DeviceFilter{
		{}, {Offset: 99_950}, {Status: lodestone.StatusOnline}, {Status: lodestone.StatusProvisioned},
		{GroupID: group}, {Tag: "pilot"}, {FirmwareVersion: "1.0.0"}, {Search: "dev-0123"},
		{Sort: lodestone.SortDeviceID, Ascending: true}, {Sort: lodestone.SortDeviceID},
		{Sort: lodestone.SortName, Ascending: true}, {Sort: lodestone.SortName},
		{Sort: lodestone.SortFirmware, Ascending: true}, {Sort: lodestone.SortLastSeen, Ascending: true},
	} {
		f.Limit = 50
		s, a, err := deviceListQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, stmt{fmt.Sprintf("devices: %+v", f), s, a})
	}
	for _, s := range stmts {
		rows, err := db.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+s.sql, s.args...)
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		depth := map[int]int{}
		var out []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			depth[id] = depth[parent] + 1
			out = append(out, strings.Repeat("  ", depth[id])+detail)
			// A scan of metrics reads every sample; of devices in an index order it stops after a page, unless
			// the rows must be sorted first.
			if strings.HasPrefix(detail, "SCAN metrics") || strings.Contains(detail, "TEMP B-TREE FOR ORDER BY") ||
				detail == "SCAN devices" {
				t.Errorf("%s: %s", s.name, detail)
			}
		}
		rows.Close()
		t.Logf("%s\n%s", s.name, strings.Join(out, "\n"))
	}
}
