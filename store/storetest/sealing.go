package storetest

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Sealer is a store that seals metric points into compressed blocks (store/metricblock); every read of points
// must answer the same before and after.
type Sealer interface {
	SealReadable
	SealMetrics(ctx context.Context, cutoff time.Time) (int, error)
}

// SealReadable is what SealReads reads.
type SealReadable interface {
	lodestone.Store
	lodestone.SeriesReader
	lodestone.DeviceReporter
	lodestone.FleetCounter
	lodestone.RetentionStore
}

var sealBase = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// sealTwin opens a store holding SealFleet, with one device tagged.
func sealTwin(t *testing.T, open Opener) lodestone.Store {
	t.Helper()
	ctx := context.Background()
	s := open(t)
	t.Cleanup(func() { s.Close() })
	if err := s.WriteTelemetry(ctx, SealFleet()); err != nil {
		t.Fatal(err)
	}
	tags := "north"
	if _, err := s.UpdateDevice(ctx, "dev-1", lodestone.DeviceUpdate{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	return s
}

// SealFleet is three devices sending five keys (a gauge with NaNs, a counter, a histogram, an unknown type, a
// second gauge) every 20 s for three hours; the devices share arrival times, so fleet series break ties by row id.
func SealFleet() []*lodestone.DeviceBatch {
	base := sealBase
	var out []*lodestone.DeviceBatch
	for i := range 3 * 180 {
		at := base.Add(time.Duration(i) * 20 * time.Second).Add(time.Duration(i%7) * time.Millisecond)
		for d := range 3 {
			g := float64((i*7+d*3)%41) / 4 // exact in binary, so sums agree in any order
			if i%13 == 5 {
				g = math.NaN()
			}
			out = append(out, &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("dev-%d", d), ReceivedAt: at,
				Info: &lodestone.DeviceInfo{FirmwareVersion: "1.0.0", BuildID: 1},
				Metrics: []lodestone.Metric{
					{Key: "temp", Type: lodestone.MetricGauge, Value: g, Ticks: uint64(i * 1000)},
					{Key: "uptime", Type: lodestone.MetricCounter, Value: float64(i * 20), Ticks: uint64(i * 1000)},
					{Key: "lat", Type: lodestone.MetricHistogram, Value: float64(i % 5), Max: float64(i%5 + d + 1),
						Ticks: uint64(i)},
					{Key: "blob", Type: lodestone.MetricType(9), Raw: []byte{byte(i), byte(d)}, Ticks: 1},
					{Key: "rssi", Type: lodestone.MetricGauge, Value: -60 + float64(i%9), Ticks: 3},
				}})
		}
	}
	return out
}

// SealReads is every read of points that sealing must not change.
func SealReads(t *testing.T, s lodestone.Store) map[string]any {
	t.Helper()
	db := s.(SealReadable)
	ctx := context.Background()
	base := sealBase
	out := map[string]any{}
	find := func(name string, f lodestone.MetricFilter) {
		got, err := db.FindMetrics(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// NaN never equals itself: compare its text.
		var s []string
		for _, m := range got {
			s = append(s, fmt.Sprintf("%d %d %s %s %d %v %v %x %d %s", m.ID, m.DeviceRowID, m.DeviceID, m.Key, m.Type,
				m.Value, m.Max, m.Raw, m.Ticks, m.ReceivedAt))
		}
		out[name] = s
	}
	find("all", lodestone.MetricFilter{})
	find("all page 3", lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{Limit: 40, Offset: 80}})
	find("deep page", lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{Limit: 100, Offset: 5000}})
	find("device", lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "dev-1", Limit: 500}})
	find("key", lodestone.MetricFilter{Key: "lat", TelemetryFilter: lodestone.TelemetryFilter{Limit: 300}})
	find("device key range", lodestone.MetricFilter{Key: "blob", TelemetryFilter: lodestone.TelemetryFilter{
		DeviceID: "dev-2", Since: base.Add(50 * time.Minute), Until: base.Add(100 * time.Minute), Limit: 1000}})
	find("old range", lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{
		Until: base.Add(30 * time.Minute), Limit: 77, Offset: 13}})
	find("unknown device", lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{DeviceID: "nope"}})
	series := func(name string, q lodestone.SeriesQuery) {
		got, err := db.MetricSeries(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var s []string
		for _, x := range got {
			s = append(s, fmt.Sprintf("%+v", *x))
		}
		out[name] = s
	}
	for _, key := range []string{"temp", "lat", "uptime"} {
		series(key+" devices", lodestone.SeriesQuery{Key: key, DeviceIDs: []string{"dev-0", "dev-1"},
			From: base.Add(7 * time.Minute), To: base.Add(170 * time.Minute), Step: 5 * time.Minute})
		series(key+" fleet", lodestone.SeriesQuery{Key: key, Fleet: true, From: base.Add(7*time.Minute + 13*time.Second),
			To: base.Add(171*time.Minute + 5*time.Second), Step: 10 * time.Minute})
		series(key+" fleet all", lodestone.SeriesQuery{Key: key, Fleet: true, From: base, To: base.Add(4 * time.Hour)})
		series(key+" fleet tag", lodestone.SeriesQuery{Key: key, Fleet: true, Tag: "north", From: base,
			To: base.Add(3 * time.Hour), Step: 15 * time.Minute})
	}
	sums, err := db.DeviceSummaries(ctx, lodestone.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		out["summary "+s.DeviceID] = s.Metrics
	}
	c, err := db.FleetCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out["fleet metrics"] = c.Metrics
	return out
}

// CompareSealReads fails t for every read that differs.
func CompareSealReads(t *testing.T, what string, want, got map[string]any) {
	t.Helper()
	for k, w := range want {
		if !reflect.DeepEqual(w, got[k]) {
			t.Errorf("%s: %s differs:\n rows:   %v\n sealed: %v", what, k, w, got[k])
		}
	}
}

// testSealedReadsMatchRows writes the same points into two databases, seals one step by step, and compares every
// read of points after each step, after retention and after a device is deleted.
func testSealedReadsMatchRows(t *testing.T, open Opener) {
	ctx := context.Background()
	rows := sealTwin(t, open).(SealReadable)
	s := sealTwin(t, open)
	sealed, ok := s.(Sealer)
	if !ok {
		t.Skip("this store does not seal metric points")
	}
	base := sealBase
	want := SealReads(t, rows)
	CompareSealReads(t, "before sealing", want, SealReads(t, s))
	total := 0
	for _, cut := range []time.Duration{40 * time.Minute, 41 * time.Minute, 90 * time.Minute, 4 * time.Hour} {
		n, err := sealed.SealMetrics(ctx, base.Add(cut))
		if err != nil {
			t.Fatal(err)
		}
		total += n
		CompareSealReads(t, fmt.Sprintf("sealed before %s", cut), want, SealReads(t, s))
	}
	// A store may keep its newest row unsealed, so that it never hands out a sealed point's id again.
	if all := 3 * 180 * 3 * 5; total != all && total != all-1 {
		t.Fatalf("sealed %d points, want all %d", total, all)
	}
	if n, err := sealed.SealMetrics(ctx, base.Add(5*time.Hour)); n != 0 || err != nil {
		t.Fatalf("second seal: %d %v", n, err)
	}
	// New rows after sealing mix with blocks.
	more := SealFleet()[:30]
	for _, db := range []lodestone.Store{rows, sealed} {
		if err := db.WriteTelemetry(ctx, more); err != nil {
			t.Fatal(err)
		}
	}
	want = SealReads(t, rows)
	CompareSealReads(t, "rows over blocks", want, SealReads(t, s))
	// Ids stay unique: new rows never take the id of a sealed point.
	seen := map[int64]bool{}
	for off := 0; ; off += 1000 {
		page, err := sealed.FindMetrics(ctx, lodestone.MetricFilter{TelemetryFilter: lodestone.TelemetryFilter{
			Limit: 1000, Offset: off}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			if seen[m.ID] {
				t.Fatalf("metric id %d appears twice after new rows joined sealed points", m.ID)
			}
			seen[m.ID] = true
		}
		if len(page) < 1000 {
			break
		}
	}
	if n := 3*180*3*5 + 30*5; len(seen) != n {
		t.Fatalf("read %d metric points, want %d", len(seen), n)
	}

	cut := base.Add(77*time.Minute + 30*time.Second)
	a, err := rows.PurgeBefore(ctx, cut, 100)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sealed.PurgeBefore(ctx, cut, 100)
	if err != nil {
		t.Fatal(err)
	}
	if a["metrics"] != b["metrics"] {
		t.Errorf("retention purged %d rows but %d sealed points", a["metrics"], b["metrics"])
	}
	CompareSealReads(t, "after retention", SealReads(t, rows), SealReads(t, s))

	for _, db := range []lodestone.Store{rows, sealed} {
		if err := db.DeleteDevice(ctx, "dev-2"); err != nil {
			t.Fatal(err)
		}
	}
	CompareSealReads(t, "after device delete", SealReads(t, rows), SealReads(t, s))
}
