package fleetfill_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/internal/fleetfill"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// TestFillSmallFleet fills a small fleet and checks what the benchmarks rely on: every device exists with a
// name or not, tags, a key and a firmware version; the samples add up; the groups have their members.
func TestFillSmallFleet(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "f.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := fleetfill.Config{Devices: 2000, Points: 60_000, Busy: 2, BusyEvery: time.Hour}
	last := 0
	if err := fleetfill.Fill(ctx, db, c, func(n int) { last = n }); err != nil {
		t.Fatal(err)
	}
	// 2 busy devices × 720 hourly sessions, the rest 6000-1440 sessions, 10 keys each.
	if last != 60_000 {
		t.Errorf("progress ended at %d samples, want 60000", last)
	}
	devs, err := db.FindDevices(ctx, lodestone.DeviceFilter{Limit: 1000, Sort: lodestone.SortID, Ascending: true})
	if err != nil || len(devs) != 1000 {
		t.Fatalf("devices: %d, %v", len(devs), err)
	}
	d, err := db.FindDeviceByID(ctx, fleetfill.DeviceID(7))
	if err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != fleetfill.DeviceID(7) || d.DeviceKey == nil || d.Tags == nil || *d.Tags != "field,pilot" ||
		d.FirmwareVersion == "" || d.Status != lodestone.StatusOffline {
		t.Errorf("device 7: %+v", d)
	}
	groups, err := db.FindGroups(ctx)
	if err != nil || len(groups) != len(fleetfill.Groups) {
		t.Fatalf("groups: %v, %v", groups, err)
	}
	got, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "temp", Fleet: true,
		From: fleetfill.Default().End.Add(-30 * 24 * time.Hour), To: fleetfill.Default().End})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, b := range got[0].Buckets {
		n += b.Count
	}
	if n != 6000 {
		t.Errorf("temp samples in the fleet series: %d, want 6000", n)
	}
	busy, err := db.MetricSeries(ctx, lodestone.SeriesQuery{Key: "latency_ms", DeviceIDs: []string{fleetfill.DeviceID(0)},
		From: fleetfill.Default().End.Add(-24 * time.Hour), To: fleetfill.Default().End, Step: time.Hour})
	if err != nil || len(busy[0].Buckets) != 24 || busy[0].Buckets[0].Max <= busy[0].Buckets[0].Min {
		t.Fatalf("a busy device's last day: %+v, %v", busy, err)
	}
}

// TestCachePathFollowsTheFleet: another fleet, or another schema, is another file.
func TestCachePathFollowsTheFleet(t *testing.T) {
	a, err := fleetfill.CachePath(fleetfill.Default())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := fleetfill.CachePath(fleetfill.Config{Devices: 10})
	if a == b || !strings.HasPrefix(filepath.Base(a), "fleet-") || filepath.Base(filepath.Dir(a)) != "lodestone-bench" {
		t.Fatalf("cache paths %q and %q", a, b)
	}
	if os.Getenv("FLEETFILL_PRINT_PATH") != "" {
		t.Log(a)
	}
}
