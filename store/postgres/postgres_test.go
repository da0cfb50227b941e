package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/postgres/pgtest"
	"github.com/lodestone-fleet/lodestone/store/storetest"
)

// MustOpenDB opens a store in a fresh schema of the test server and closes it when the test ends.
func MustOpenDB(tb testing.TB) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), pgtest.URL(tb), postgres.Options{})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) lodestone.Store { return MustOpenDB(tb) })
}

// A device heard from again within a second keeps its row untouched (no row lock, no new row version), unless it
// says something new: other firmware, or it was offline.
func TestDeviceRowLeftAloneWithinSlack(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	write := func(at time.Time, info *lodestone.DeviceInfo) {
		t.Helper()
		if err := db.WriteTelemetry(ctx, []*lodestone.DeviceBatch{{DeviceID: "d", ReceivedAt: at, Info: info,
			Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}}}); err != nil {
			t.Fatal(err)
		}
	}
	get := func() *lodestone.Device {
		t.Helper()
		d, err := db.FindDeviceByID(ctx, "d")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	v1 := &lodestone.DeviceInfo{FirmwareVersion: "1.0", BuildID: 1}
	write(t0, v1)
	write(t0.Add(500*time.Millisecond), v1)
	if d := get(); !d.LastSeen.Equal(t0) {
		t.Fatalf("last_seen moved within the slack: %v", d.LastSeen)
	}
	write(t0.Add(1500*time.Millisecond), v1)
	if d := get(); !d.LastSeen.Equal(t0.Add(1500 * time.Millisecond)) {
		t.Fatalf("last_seen did not move after the slack: %v", d.LastSeen)
	}
	write(t0.Add(1600*time.Millisecond), &lodestone.DeviceInfo{FirmwareVersion: "2.0", BuildID: 2})
	if d := get(); d.FirmwareVersion != "2.0" || d.BuildID != 2 {
		t.Fatalf("new firmware within the slack not stored: %+v", d)
	}
	if _, err := db.MarkOfflineDevices(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	write(t0.Add(1700*time.Millisecond), nil)
	if d := get(); d.Status != lodestone.StatusOnline {
		t.Fatalf("contact within the slack left the device %s", d.Status)
	}
	hb, _ := db.FindHeartbeats(ctx, lodestone.TelemetryFilter{DeviceID: "d"})
	if len(hb) != 5 {
		t.Fatalf("%d heartbeats, want 5: records are always stored", len(hb))
	}
}

// Metric key and log source names come from clients: unique ones keep the id caches within their bound.
func TestIDCachesBounded(t *testing.T) {
	defer func(n int) { postgres.KeyCacheSize = n }(postgres.KeyCacheSize)
	postgres.KeyCacheSize = 1000 // the real bound is 65,536; ten times the bound keeps the test quick
	db := MustOpenDB(t)
	storetest.CacheBound(t, db, 10_000, postgres.KeyCacheSize, db.CacheLens)
}
