package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/storetest"
)

// A transaction's metric and heartbeat rows go in 64-row statements and the rest in smaller ones (32, 16, … 1):
// every row is stored once, whatever the count, with its own values.
func TestWriteTelemetryStoresEveryRowOfAnyGroupSize(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	at := time.Now().Truncate(time.Millisecond)
	for _, n := range []int{1, 2, 7, 63, 64, 65, 100, 127, 200} {
		dev := fmt.Sprintf("rows-%d", n)
		// One session per request: n batches of one metric and one heartbeat each, committed together.
		batches := make([]*lodestone.DeviceBatch, n)
		for i := range batches {
			batches[i] = &lodestone.DeviceBatch{DeviceID: dev, ReceivedAt: at,
				Metrics:    []lodestone.Metric{{Key: "k", Type: lodestone.MetricGauge, Value: float64(i), Ticks: uint64(i)}},
				Heartbeats: []lodestone.Heartbeat{{UptimeTicks: uint64(i)}}}
		}
		if err := db.WriteTelemetry(ctx, batches); err != nil {
			t.Fatalf("%d rows: %v", n, err)
		}
		f := lodestone.TelemetryFilter{DeviceID: dev, Limit: 1000}
		ms, err := db.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: f})
		if err != nil {
			t.Fatal(err)
		}
		hs, err := db.FindHeartbeats(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != n || len(hs) != n {
			t.Fatalf("%d rows written: %d metrics and %d heartbeats stored", n, len(ms), len(hs))
		}
		seen := make(map[uint64]bool)
		for _, m := range ms {
			if m.Value != float64(m.Ticks) || seen[m.Ticks] || m.Ticks >= uint64(n) {
				t.Fatalf("%d rows: metric ticks %d value %v (duplicate or mismatched)", n, m.Ticks, m.Value)
			}
			seen[m.Ticks] = true
		}
		up := make(map[uint64]bool)
		for _, h := range hs {
			up[h.UptimeTicks] = true
		}
		if len(up) != n {
			t.Fatalf("%d rows: %d distinct heartbeats", n, len(up))
		}
	}
}

// A contact from an online device on the firmware it reported moves only last_seen (a cheaper statement than the
// upsert); every other contact still goes through the upsert: a new device, a firmware or build change, a device
// that was marked offline. The device row and its timeline come out as the upsert alone made them.
func TestWriteTelemetryDeviceContacts(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	post := func(at time.Time, info *lodestone.DeviceInfo) *lodestone.Device {
		t.Helper()
		if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "c", ReceivedAt: at, Info: info,
			Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}}}); err != nil {
			t.Fatal(err)
		}
		d, err := db.FindDeviceByID(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	check := func(d *lodestone.Device, fw string, build uint64, status lodestone.DeviceStatus, seen time.Time) {
		t.Helper()
		if d.FirmwareVersion != fw || d.BuildID != build || d.Status != status || !d.LastSeen.Equal(seen) ||
			!d.FirstSeen.Equal(t0) {
			t.Fatalf("device %s b%d %s first %v last %v; want %s b%d %s first %v last %v", d.FirmwareVersion,
				d.BuildID, d.Status, d.FirstSeen, d.LastSeen, fw, build, status, t0, seen)
		}
	}
	v1 := &lodestone.DeviceInfo{FirmwareVersion: "1.0", BuildID: 1}
	check(post(t0, v1), "1.0", 1, lodestone.StatusOnline, t0)
	check(post(t0.Add(time.Second), v1), "1.0", 1, lodestone.StatusOnline, t0.Add(time.Second))
	check(post(t0.Add(2*time.Second), nil), "1.0", 1, lodestone.StatusOnline, t0.Add(2*time.Second))
	check(post(t0.Add(time.Millisecond), nil), "1.0", 1, lodestone.StatusOnline, t0.Add(2*time.Second)) // late
	check(post(t0.Add(3*time.Second), &lodestone.DeviceInfo{FirmwareVersion: "1.0", BuildID: 2}), "1.0", 2,
		lodestone.StatusOnline, t0.Add(3*time.Second))
	check(post(t0.Add(4*time.Second), &lodestone.DeviceInfo{FirmwareVersion: "1.1", BuildID: 2}), "1.1", 2,
		lodestone.StatusOnline, t0.Add(4*time.Second))
	if ids, err := db.MarkOfflineDevices(ctx, t0.Add(5*time.Second)); err != nil || len(ids) != 1 {
		t.Fatalf("mark offline: %v %v", ids, err)
	}
	check(post(t0.Add(6*time.Second), nil), "1.1", 2, lodestone.StatusOnline, t0.Add(6*time.Second))

	page, err := db.DeviceTimeline(ctx, lodestone.TimelineQuery{DeviceID: "c", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range page.Entries {
		if e.Kind != "heartbeat" {
			kinds = append(kinds, e.Kind+" "+e.Summary)
		}
	}
	t.Logf("timeline: %q", kinds)
	count := func(kind string) (n int) {
		for _, e := range page.Entries {
			if e.Kind == kind {
				n++
			}
		}
		return n
	}
	// The first version, the change to 1.1; online at first contact and again after going offline.
	if count("firmware") != 2 || count("online") != 2 || count("offline") != 1 {
		t.Fatalf("timeline %q: want 2 firmware, 2 online and 1 offline entries", kinds)
	}
}

// The writer keeps the 1-minute rollups itself (migration 00200 dropped the per-row trigger): after transactions of
// any size, spanning minutes and mixing every metric type, NaNs, ties in time and rows written into minutes that
// earlier transactions began, each rollup equals the same aggregate recomputed from the samples, last sample
// (latest time, then highest id) included.
func TestWriterRollupsMatchSamples(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	fleet := storetest.SealFleet()
	for lo, n := 0, 1; lo < len(fleet); lo, n = lo+n, n*3%257+1 {
		hi := min(lo+n, len(fleet))
		if err := db.WriteTelemetry(ctx, fleet[lo:hi]); err != nil {
			t.Fatal(err)
		}
	}
	// Again, in one transaction, into the same minutes: every rollup is merged into, not created.
	if err := db.WriteTelemetry(ctx, fleet[:500]); err != nil {
		t.Fatal(err)
	}
	const recomputed = `SELECT g.key_id, g.bucket, g.n, g.nv, g.total, g.mn, g.mx, g.last_at, l.id,
		CASE WHEN l.type = 2 THEN (l.value + l.max) / 2 ELSE l.value END
	FROM (SELECT key_id, received_at - received_at % 60000 AS bucket, count(*) AS n,
		count(CASE WHEN type = 2 THEN (value + max) / 2 ELSE value END) AS nv,
		sum(CASE WHEN type = 2 THEN (value + max) / 2 ELSE value END) AS total, min(value) AS mn,
		max(CASE WHEN type = 2 THEN max ELSE value END) AS mx, max(received_at) AS last_at
		FROM metrics WHERE type IN (0, 1, 2) GROUP BY key_id, bucket) g
	JOIN metrics l ON l.id = (SELECT max(id) FROM metrics m WHERE m.received_at = g.last_at AND m.key_id = g.key_id
		AND m.type IN (0, 1, 2))
	ORDER BY 1, 2`
	read := func(q string) []string {
		rows, err := db.ReadDB().QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var key, bucket, n, nv, lastAt, lastID int64
			var total, mn, mx, last sql.NullFloat64
			if err := rows.Scan(&key, &bucket, &n, &nv, &total, &mn, &mx, &lastAt, &lastID, &last); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(key, bucket, n, nv, total, mn, mx, lastAt, lastID, last))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := read(recomputed)
	got := read(`SELECT key_id, bucket, n, nv, total, mn, mx, last_at, last_id, last_value FROM metric_rollups
		WHERE dirty = 0 ORDER BY 1, 2`)
	if len(want) != 180*4 { // 3 hours of minutes, four keys with values
		t.Fatalf("%d rollups recomputed from the samples", len(want))
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("rollup %d of %d/%d:\n got  %s\n want %s", i, len(got), len(want), got[i], want[i])
			}
		}
		t.Fatalf("%d rollups, want %d", len(got), len(want))
	}
}
