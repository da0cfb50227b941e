package sqlite_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func TestMarkOfflineDevicesNamesThem(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var batches []*lodestone.DeviceBatch
	for i, id := range []string{"a", "b", "c"} {
		batches = append(batches, &lodestone.DeviceBatch{DeviceID: id, ReceivedAt: base.Add(time.Duration(i) * time.Hour),
			Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}})
	}
	if err := db.WriteTelemetry(ctx, batches); err != nil {
		t.Fatal(err)
	}
	ids, err := db.MarkOfflineDevices(ctx, base.Add(90*time.Minute))
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("MarkOfflineDevices = %v, %v; want a, b", ids, err)
	}
	if ids, err := db.MarkOfflineDevices(ctx, base.Add(90*time.Minute)); err != nil || len(ids) != 0 {
		t.Fatalf("second sweep = %v, %v; want none", ids, err)
	}
	if d, _ := db.FindDeviceByID(ctx, "c"); d.Status != lodestone.StatusOnline {
		t.Fatalf("c is %s", d.Status)
	}
}
