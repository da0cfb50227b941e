package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func testDeviceCreatedOnFirstContact(t *testing.T, s lodestone.Store) {
	// A build id above 2^63 must survive the round trip through a signed column.
	const build = uint64(0xFEEDFACECAFEBEEF)
	write(t, s, &lodestone.DeviceBatch{DeviceID: "sensor-1", ReceivedAt: at(0), Info: info("1.2.3", build)})
	d := mustDevice(t, s, "sensor-1")
	if d.FirmwareVersion != "1.2.3" || d.BuildID != build {
		t.Fatalf("firmware %q build %x, want 1.2.3 %x", d.FirmwareVersion, d.BuildID, build)
	}
	if d.Status != lodestone.StatusOnline {
		t.Fatalf("status %q, want online", d.Status)
	}
	if !d.FirstSeen.Equal(at(0)) || !d.LastSeen.Equal(at(0)) {
		t.Fatalf("first/last seen %v %v, want %v", d.FirstSeen, d.LastSeen, at(0))
	}
	if d.ID == 0 {
		t.Fatal("device row id is 0")
	}
	if d.DeviceKey != nil || d.Name != nil {
		t.Fatalf("unprovisioned device has key %v name %v", d.DeviceKey, d.Name)
	}
	// A second contact updates firmware and last seen, never first seen.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "sensor-1", ReceivedAt: at(10), Info: info("1.2.4", 7)})
	d2 := mustDevice(t, s, "sensor-1")
	if d2.ID != d.ID || d2.FirmwareVersion != "1.2.4" || d2.BuildID != 7 || !d2.FirstSeen.Equal(at(0)) ||
		!d2.LastSeen.Equal(at(10)) {
		t.Fatalf("after update: %+v", d2)
	}
}

func testDeviceTouchKeepsFirmware(t *testing.T, s lodestone.Store) {
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at(0), Info: info("2.0.0", 99)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at(5),
		Heartbeats: []lodestone.Heartbeat{{UptimeTicks: 1}}})
	d := mustDevice(t, s, "d")
	if d.FirmwareVersion != "2.0.0" || d.BuildID != 99 || !d.LastSeen.Equal(at(5)) {
		t.Fatalf("touch changed firmware or missed last seen: %+v", d)
	}
	// A device first seen without DeviceInfo exists with empty firmware.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "bare", ReceivedAt: at(1)})
	if b := mustDevice(t, s, "bare"); b.FirmwareVersion != "" || b.BuildID != 0 {
		t.Fatalf("bare device: %+v", b)
	}
}

func testDeviceLastSeenNeverGoesBack(t *testing.T, s lodestone.Store) {
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at(100)})
	write(t, s, &lodestone.DeviceBatch{DeviceID: "d", ReceivedAt: at(50)})
	if d := mustDevice(t, s, "d"); !d.LastSeen.Equal(at(100)) {
		t.Fatalf("last seen went back to %v", d.LastSeen)
	}
}

func testDeviceNotFound(t *testing.T, s lodestone.Store) {
	_, err := s.FindDeviceByID(context.Background(), "nope")
	if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("FindDeviceByID(nope) = %v, want not_found", err)
	}
	_, err = s.FindDeviceByKey(context.Background(), 0xA300F1B2)
	if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("FindDeviceByKey = %v, want not_found", err)
	}
}

func testDeviceListOrderAndPaging(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	// Five devices share one last-seen instant: the id tie-breaker must make paging stable.
	for i := range 5 {
		write(t, s, &lodestone.DeviceBatch{DeviceID: fmt.Sprintf("same-%d", i), ReceivedAt: at(0)})
	}
	write(t, s, &lodestone.DeviceBatch{DeviceID: "newest", ReceivedAt: at(60)})
	all, err := s.FindDevices(ctx, lodestone.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || all[0].DeviceID != "newest" {
		t.Fatalf("got %d devices, first %q", len(all), all[0].DeviceID)
	}
	seen := map[string]bool{}
	for off := 0; off < 6; off += 2 {
		page, err := s.FindDevices(ctx, lodestone.DeviceFilter{Limit: 2, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range page {
			if d.DeviceID != all[off+i].DeviceID {
				t.Fatalf("page at %d: %q, want %q", off+i, d.DeviceID, all[off+i].DeviceID)
			}
			seen[d.DeviceID] = true
		}
	}
	if len(seen) != 6 {
		t.Fatalf("paging saw %d distinct devices, want 6", len(seen))
	}
	online, err := s.FindDevices(ctx, lodestone.DeviceFilter{Status: lodestone.StatusOffline})
	if err != nil || len(online) != 0 {
		t.Fatalf("offline filter: %d devices, err %v", len(online), err)
	}
}

func testMarkOffline(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	write(t, s, &lodestone.DeviceBatch{DeviceID: "old", ReceivedAt: at(0)},
		&lodestone.DeviceBatch{DeviceID: "fresh", ReceivedAt: at(600)})
	n, err := s.MarkOffline(ctx, at(300))
	if err != nil || n != 1 {
		t.Fatalf("MarkOffline = %d, %v; want 1", n, err)
	}
	if d := mustDevice(t, s, "old"); d.Status != lodestone.StatusOffline {
		t.Fatalf("old device status %q", d.Status)
	}
	if d := mustDevice(t, s, "fresh"); d.Status != lodestone.StatusOnline {
		t.Fatalf("fresh device status %q", d.Status)
	}
	off, err := s.FindDevices(ctx, lodestone.DeviceFilter{Status: lodestone.StatusOffline})
	if err != nil || len(off) != 1 || off[0].DeviceID != "old" {
		t.Fatalf("offline list %v, %v", off, err)
	}
	// Contact brings it back online.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "old", ReceivedAt: at(700)})
	if d := mustDevice(t, s, "old"); d.Status != lodestone.StatusOnline {
		t.Fatalf("status after contact %q", d.Status)
	}
	if n, _ := s.MarkOffline(ctx, at(300)); n != 0 {
		t.Fatalf("second MarkOffline changed %d devices", n)
	}
	// The named form reports exactly the devices it changed, once.
	write(t, s, &lodestone.DeviceBatch{DeviceID: "quiet", ReceivedAt: at(100)})
	ids, err := s.MarkOfflineDevices(ctx, at(650))
	if err != nil || len(ids) != 2 || !(ids[0] == "quiet" && ids[1] == "fresh" || ids[0] == "fresh" && ids[1] == "quiet") {
		t.Fatalf("MarkOfflineDevices = %v, %v; want fresh and quiet", ids, err)
	}
	if ids, err := s.MarkOfflineDevices(ctx, at(650)); err != nil || len(ids) != 0 {
		t.Fatalf("second MarkOfflineDevices = %v, %v", ids, err)
	}
}

func testSettings(t *testing.T, s lodestone.Store) {
	ctx := context.Background()
	if _, err := s.Setting(ctx, "k"); lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
		t.Fatalf("missing setting: %v", err)
	}
	if ok, err := s.SetSettingIfAbsent(ctx, "k", "v1"); !ok || err != nil {
		t.Fatalf("first set: %v %v", ok, err)
	}
	if ok, err := s.SetSettingIfAbsent(ctx, "k", "v2"); ok || err != nil {
		t.Fatalf("second set: %v %v", ok, err)
	}
	if v, err := s.Setting(ctx, "k"); v != "v1" || err != nil {
		t.Fatalf("setting = %q %v", v, err)
	}
}

// A device heard from again within lodestone.LastSeenSlack keeps its row untouched (no row lock, no new row
// version, no index or stability write), unless it says something new: other firmware, or it was offline.
func testDeviceLastSeenSlack(t *testing.T, db lodestone.Store) {
	ctx := context.Background()
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
