package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func testDeviceSummaries(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	r, ok := s.(lodestone.DeviceReporter)
	if !ok {
		t.Fatal("the backend does not implement lodestone.DeviceReporter")
	}
	if got, err := r.DeviceSummaries(ctx, lodestone.DeviceFilter{}); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v (want an empty, non-nil list)", got, err)
	}
	// busy: 2 faults, 3 metrics, 1 reboot over two writes; quiet: contact only, seen last.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "busy", ReceivedAt: base,
		Info:    &lodestone.DeviceInfo{FirmwareVersion: "1.2.3", BuildID: 0xBEEF},
		Metrics: []lodestone.Metric{{Key: "a", Value: 1}, {Key: "b", Value: 2}},
		Faults:  []lodestone.Fault{{FaultType: 1}}, Reboots: []lodestone.Reboot{{Reason: 3}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "busy", ReceivedAt: base.Add(time.Minute),
		Metrics: []lodestone.Metric{{Key: "a", Value: 3}}, Faults: []lodestone.Fault{{FaultType: 2}}})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "quiet", ReceivedAt: base.Add(time.Hour),
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}})
	got, err := r.DeviceSummaries(ctx, lodestone.DeviceFilter{})
	if err != nil || len(got) != 2 {
		t.Fatalf("summaries: %v %v", got, err)
	}
	q, b := got[0], got[1]
	if q.DeviceID != "quiet" || q.Faults != 0 || q.Metrics != 0 || q.Reboots != 0 {
		t.Fatalf("quiet: %+v", q)
	}
	if b.DeviceID != "busy" || b.Faults != 2 || b.Metrics != 3 || b.Reboots != 1 || b.FirmwareVersion != "1.2.3" ||
		b.BuildID != 0xBEEF || !b.LastSeen.Equal(base.Add(time.Minute)) {
		t.Fatalf("busy: %+v", b)
	}
	page, err := r.DeviceSummaries(ctx, lodestone.DeviceFilter{Limit: 1, Offset: 1})
	if err != nil || len(page) != 1 || page[0].DeviceID != "busy" {
		t.Fatalf("second page: %v %v", page, err)
	}
}
